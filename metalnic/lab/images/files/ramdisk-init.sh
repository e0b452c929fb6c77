#!/bin/busybox sh
# The metalnic ramdisk's /init (built by metalnic.lab.images): load the NIC and
# disk drivers, lease an address on the booting NIC (BOOTIF), then run the
# ramdisk agent against the API named on the kernel command line.  When the
# agent returns after rescue.finalize_rescue (the rescue user's hash is in
# /etc/shadow), the ramdisk becomes the rescue environment: the conductor moves
# the NIC to the tenant network, so the ramdisk leases again until a DHCP server
# other than the rescuing network's answers, then serves SSH (sshd.sh).  With the
# conductor's key on the command line (metalnic.sshkey=, the ansible deploy) it
# serves SSH for that key while the agent runs.
TAG=metalnic-ramdisk
. /lib/metalnic/common.sh
. /lib/metalnic/sshd.sh

# Lease again on $1 until a DHCP server other than $2 answers (up to $3 rounds
# of lease's 60 s): the old network's server may answer until the NIC has moved.
lease_elsewhere() {
  round=0
  while [ "$round" -lt "$3" ]; do
    kill "$UDHCPC" 2>/dev/null
    wait "$UDHCPC" 2>/dev/null
    if lease "$1" && [ "$SERVER" != "$2" ]; then
      return 0
    fi
    round=$((round + 1))
    sleep 1
  done
  return 1
}

rescue_mode() {
  say "rescue: password set for user rescue; leasing on the tenant network"
  if ! lease_elsewhere "$IF" "$SERVER" 10; then
    say "rescue: no lease from another network's DHCP server on $IF; giving up"
    idle
  fi
  say "rescue: lease $IP/$MASK on $IF from $SERVER"
  ssh_users
  if ssh_server 22; then
    say "rescue: ready: ssh rescue@$IP"
  fi
  idle
}
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
mkdir -p /etc
# The ansible deploy: the conductor's key on the command line → an SSH server that
# admits that key only; the agent reports the server's port and host key.
set --
if [ -n "$SSHKEY" ]; then
  ssh_users
  ssh_authorize "$SSHKEY"
  if ssh_server 22 -s; then
    set -- --ssh-port 22 --ssh-host-key /run/ssh_host_key.pub
  fi
fi
say "agent starting: --api-url $API --mac $MAC --disk $DISK --config-drive $DRIVE --listen $IP:9999 $*"
PYTHONPATH=/usr/lib/metalnic PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3.11 -S -m metalnic.ramdisk.agent --api-url "$API" --mac "$MAC" \
  --disk "$DISK" --config-drive "$DRIVE" --listen "$IP:9999" --shadow /etc/shadow "$@" 2>&1
STATUS=$?
if grep -q '^rescue:\$' /etc/shadow 2>/dev/null; then
  rescue_mode
fi
say "agent exited (status $STATUS)"
idle
