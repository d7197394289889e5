#!/bin/sh
# greet NAME: the program this repository builds.
echo "Hello, ${1:?usage: greet NAME}!"
