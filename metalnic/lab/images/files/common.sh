# Shared by the ramdisk's and the instance's /init (busybox sh; built by
# metalnic.lab.images).  TAG names the stage on the serial console.

say() {
  echo "$TAG: $* (uptime $(cut -d' ' -f1 /proc/uptime 2>/dev/null))"
}

# The kernel's command line → MAC (from BOOTIF: Ironic's iPXE passes ${mac},
# "aa:bb:…"; PXELINUX's IPAPPEND passes "01-aa-bb-…"), API (ipa-api-url),
# DISK (metalnic.disk=, default /dev/vda), SSHKEY (metalnic.sshkey=<type>:<base64>:
# the conductor's public key for the ansible deploy, given back as "<type> <base64>").
# $1: the file (default /proc/cmdline).
parse_cmdline() {
  MAC= API= DISK=/dev/vda SSHKEY=
  for arg in $(cat "${1:-/proc/cmdline}"); do
    case "$arg" in
      BOOTIF=*) MAC=$(echo "${arg#BOOTIF=}" | tr 'A-F-' 'a-f:') ;;
      ipa-api-url=*) API="${arg#ipa-api-url=}" ;;
      metalnic.disk=*) DISK="${arg#metalnic.disk=}" ;;
      metalnic.sshkey=*) SSHKEY=$(echo "${arg#metalnic.sshkey=}" | sed 's/:/ /') ;;
    esac
  done
  # "01:aa:bb:cc:dd:ee:ff": the leading 01 is the ARP hardware type (Ethernet).
  if [ "${#MAC}" = 20 ] && [ "${MAC#01:}" != "$MAC" ]; then
    MAC="${MAC#01:}"
  fi
}

# The hostname in the config drive $1: JSON the ramdisk agent wrote, NUL-terminated
# ({"meta_data": {"hostname": …}, …}); nothing when there is none.
drive_hostname() {
  dd if="$1" bs=4096 count=16 2>/dev/null | tr -d '\000' |
    sed -n 's/.*"hostname": *"\([^"]*\)".*/\1/p' | head -n 1
}

early_setup() {
  /bin/busybox mkdir -p /proc /sys /dev /run /tmp /sbin /usr/bin /usr/sbin
  /bin/busybox --install -s
  mount -t proc proc /proc
  mount -t sysfs sys /sys
  mount -t devtmpfs dev /dev 2>/dev/null
  ip link set lo up
}

load_modules() {
  for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m.ko" 2>/run/insmod.err || say "insmod $m failed: $(cat /run/insmod.err)"
  done
}

# Whether block device $1 appears within $2 tenths of a second (virtio disks
# show up asynchronously after virtio_blk is loaded).
wait_block() {
  i=0
  while [ ! -b "$1" ] && [ "$i" -lt "$2" ]; do
    usleep 100000
    i=$((i + 1))
  done
  [ -b "$1" ]
}

# The NIC whose MAC is $1 (any but lo when $1 is empty); waits for it up to 10 s.
find_nic() {
  i=0
  while [ "$i" -lt 50 ]; do
    for d in /sys/class/net/*; do
      n="${d##*/}"
      [ "$n" = lo ] && continue
      if [ -z "$1" ] || [ "$(cat "$d/address")" = "$1" ]; then
        echo "$n"
        return 0
      fi
    done
    usleep 200000
    i=$((i + 1))
  done
  return 1
}

# DHCP on $1 with udhcpc kept running (it renews, pid in UDHCPC); sets IP once
# leased (up to 60 s).  $2, if given: the hostname to send (option 12), as a
# cloud instance does.
lease() {
  rm -f /run/lease
  set -- "$1" ${2:+-x "hostname:$2"}
  udhcpc -f -i "$@" -t 30 -T 2 -s /lib/metalnic/udhcpc.sh >/run/udhcpc.log 2>&1 &
  UDHCPC=$!
  i=0
  while [ ! -s /run/lease ] && [ "$i" -lt 300 ]; do
    usleep 200000
    i=$((i + 1))
  done
  [ -s /run/lease ] || return 1
  . /run/lease
}

idle() {
  while true; do sleep 3600; done
}
