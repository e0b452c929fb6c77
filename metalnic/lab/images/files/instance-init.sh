#!/bin/busybox sh
# The metalnic instance image's /init (built by metalnic.lab.images): a tiny OS
# that takes its address by DHCP, names itself from the config drive, answers
# ping and HTTP on port 80 (busybox httpd), and says so on the serial console.
TAG=metalnic-instance
. /lib/metalnic/common.sh
early_setup
say "init"
load_modules
NAME=metalnic-instance
wait_block /dev/vda 100
if wait_block /dev/vdb 10; then
  FOUND=$(drive_hostname /dev/vdb)
  [ -n "$FOUND" ] && NAME="$FOUND"
fi
hostname "$NAME"
say "hostname $NAME"
if ! IF=$(find_nic ""); then
  say "no NIC; giving up"
  idle
fi
if ! lease "$IF" "$NAME"; then
  say "no lease on $IF; giving up"
  idle
fi
say "lease $IP/$MASK on $IF"
mkdir -p /www
echo "metalnic-instance $NAME $IP" >/www/index.html
httpd -p 80 -h /www
say "ready: ping $IP, http://$IP:80/"
idle
