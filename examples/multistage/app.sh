#!/bin/sh
echo "app version @VERSION@ running on $(uname -s)"
