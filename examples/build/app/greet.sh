#!/bin/sh
echo "$(cat /etc/greeting), $1"
echo "::{\"outputs\":{\"greeting\":\"$(cat /etc/greeting)\"}}::"
