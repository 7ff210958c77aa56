#!/bin/sh
# The code lives in the image; nothing is mounted at run time. sh stays PID 1 and stops httpd on SIGTERM, so a
# pod stops at once instead of waiting out its grace period.
echo "hello from $(cat /app/VERSION), serving /version on :8080"
httpd -f -p 8080 -h /app/www &
trap 'kill $!; exit 0' TERM INT
wait
