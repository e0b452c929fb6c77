#!/bin/busybox sh
# The metalnic ramdisk's /init (built by metalnic.lab.images): load the NIC and
# disk drivers, lease an address on the booting NIC (BOOTIF), then run the
# ramdisk agent against the API named on the kernel command line.
TAG=metalnic-ramdisk
. /lib/metalnic/common.sh
early_setup
say "init"
parse_cmdline
load_modules
say "cmdline BOOTIF=${MAC:-none} ipa-api-url=${API:-none} disk=$DISK"
if ! IF=$(find_nic "$MAC"); then
  say "no NIC with MAC ${MAC:-any}; giving up"
  idle
fi
say "dhcp on $IF ($(cat /sys/class/net/$IF/address))"
if ! lease "$IF"; then
  say "no lease on $IF; giving up"
  idle
fi
say "lease $IP/$MASK on $IF from $SERVER"
[ -n "$MAC" ] || MAC=$(cat "/sys/class/net/$IF/address")
wait_block "$DISK" 100 || say "warning: no disk $DISK"
# The config drive goes on the second disk, where the instance reads it back.
DRIVE=/dev/vdb
if ! wait_block "$DRIVE" 10; then
  DRIVE=/run/config-2
  say "no config-drive disk /dev/vdb: the config drive stays in RAM ($DRIVE)"
fi
if [ -z "$API" ]; then
  say "no ipa-api-url on the kernel command line; nothing to do"
  idle
fi
say "agent starting: --api-url $API --mac $MAC --disk $DISK --config-drive $DRIVE --listen $IP:9999"
PYTHONPATH=/usr/lib/metalnic PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3.11 -S -m metalnic.ramdisk.agent --api-url "$API" --mac "$MAC" \
  --disk "$DISK" --config-drive "$DRIVE" --listen "$IP:9999" 2>&1
say "agent exited (status $?)"
idle
