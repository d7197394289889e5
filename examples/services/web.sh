#!/bin/sh
# web: busybox httpd on port 8080 serving a page and /cgi-bin/hits, a CGI
# script that counts its requests in the kv service, which it reaches by
# its slug on the namespace's network. httpd logs each request and response on stderr.
set -e
mkdir -p /tmp/www/cgi-bin
echo "$GREETING from $(hostname)" >/tmp/www/index.html
cat >/tmp/www/cgi-bin/hits <<'EOF'
#!/bin/sh
n=$(printf 'INCR hits\r\nQUIT\r\n' | nc kv 6379 | head -n 1 | tr -d ':\r')
printf 'Content-Type: text/plain\r\n\r\nhits: %s\n' "$n"
EOF
chmod +x /tmp/www/cgi-bin/hits
exec httpd -f -vv -p 8080 -h /tmp/www
