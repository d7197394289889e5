#!/bin/sh
# kv: a Redis-like key-value server in busybox sh, run once per connection
# by `nc -ll -p 6379 -e kv.sh` (stdin and stdout are the connection).
# Requests are RESP arrays of bulk strings (what Redis clients send) or
# inline commands ("PING"); the commands are PING, ECHO, SET, GET, INCR,
# DEL and QUIT. Values are files under $KV_DIR (a named volume), so they
# outlive the container. Each command is logged on stderr.
CR=$(printf '\r')
dir=${KV_DIR:-/data}
while read -r line; do
	line=${line%"$CR"}
	case $line in
	'*'*)
		n=${line#?}
		set --
		while [ "$n" -gt 0 ]; do
			read -r len || exit 0
			read -r arg || exit 0
			set -- "$@" "${arg%"$CR"}"
			n=$((n - 1))
		done
		;;
	'') continue ;;
	*) set -- $line ;;
	esac
	cmd=$(echo "$1" | tr a-z A-Z)
	key=$2
	case $cmd:$key in SET:* | GET:* | INCR:* | DEL:*)
		case $key in '' | *[!A-Za-z0-9:_.-]*)
			printf -- '-ERR bad key\r\n'
			continue
			;;
		esac
		;;
	esac
	echo "kv: $cmd $key" >&2
	case $cmd in
	QUIT)
		printf '+OK\r\n'
		exit 0
		;;
	PING) printf '+PONG\r\n' ;;
	ECHO) printf '$%d\r\n%s\r\n' "${#2}" "$2" ;;
	SET) printf '%s' "$3" >"$dir/$key" && printf '+OK\r\n' ;;
	GET)
		if [ -f "$dir/$key" ]; then
			v=$(cat "$dir/$key")
			printf '$%d\r\n%s\r\n' "${#v}" "$v"
		else
			printf '$-1\r\n'
		fi
		;;
	INCR)
		# One connection at a time: mkdir is the lock.
		until mkdir "$dir/.lock" 2>/dev/null; do usleep 1000; done
		v=$(cat "$dir/$key" 2>/dev/null)
		v=$((${v:-0} + 1))
		printf '%s' "$v" >"$dir/$key"
		rmdir "$dir/.lock"
		printf ':%d\r\n' "$v"
		;;
	DEL)
		if [ -f "$dir/$key" ]; then
			rm -f "$dir/$key"
			printf ':1\r\n'
		else
			printf ':0\r\n'
		fi
		;;
	*) printf -- '-ERR unknown command %s\r\n' "$cmd" ;;
	esac
done
