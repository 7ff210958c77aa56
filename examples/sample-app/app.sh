#!/bin/sh
# The code lives in the image; nothing is mounted at run time.
echo "hello from $(cat /app/VERSION)"
exec sleep 2147483647
