#!/bin/sh
# udhcpc's event script (busybox): configure the address, record the lease.
case "$1" in
  deconfig)
    ip link set "$interface" up
    ip addr flush dev "$interface"
    ;;
  bound|renew)
    if [ "$1" = bound ] || ! ip addr show dev "$interface" | grep -q "inet $ip/"; then
      ip addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" dev "$interface"
      [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
    fi
    echo "IP=$ip MASK=${mask:-24} ROUTER=${router%% *} SERVER=$serverid LEASE_TIME=$lease" >/run/lease
    ;;
esac
exit 0
