#!/bin/sh
echo "$GREETING, $1 (from $(pwd))"
