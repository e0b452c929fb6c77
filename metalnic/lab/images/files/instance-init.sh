#!/bin/busybox sh
# The metalnic instance image's /init (built by metalnic.lab.images): a tiny OS
# that takes its address by DHCP, names itself from the config drive, answers
# ping and HTTP on port 80 (busybox httpd), and says so on the serial console;
# on the second serial port (ttyS1: the lab's probe channel, metalnic.lab.probe)
# it answers "ping IP" and "tcp IP PORT" with "ok …"/"fail …", one line each.
TAG=metalnic-instance
. /lib/metalnic/common.sh

# Whether $1 answers a ping (two tries: the first may wait for ARP).
reach_ping() {
  ping -c 1 -W 1 "$1" >/dev/null 2>&1 || ping -c 1 -W 1 "$1" >/dev/null 2>&1
}

# Whether a TCP connection to $1 port $2 opens (busybox nc: -w the connect timeout, -e true closes it at once).
reach_tcp() {
  timeout 5 nc -w 2 "$1" "$2" -e true </dev/null >/dev/null 2>&1
}

# One command a line on tty $1, one answer a line (see metalnic.lab.probe).
probe_loop() {
  exec 3<>"$1"
  stty raw -echo <&3 2>/dev/null
  while read -r verb ip port _ <&3; do
    case "$verb" in
      ping) if reach_ping "$ip"; then echo "ok $ip"; else echo "fail $ip"; fi ;;
      tcp) if reach_tcp "$ip" "$port"; then echo "ok $ip $port"; else echo "fail $ip $port"; fi ;;
      "") ;;
      *) echo "error unknown command: $verb" ;;
    esac >&3
  done
}
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
if [ -c /dev/ttyS1 ]; then
  probe_loop /dev/ttyS1 &
  say "probe channel on ttyS1"
fi
say "ready: ping $IP, http://$IP:80/"
idle
