# The ramdisk's SSH server (dropbear, from Debian's dropbear-bin), started by
# /init on request — by the rescue mode today (ramdisk-init.sh), by any mode that
# needs a shell on the host.  Sourced after common.sh (busybox sh).

# The rescue user of IPA's rescue mode: root's powers (IPA's gets passwordless
# sudo; the ramdisk has no sudo), its password hash set in /etc/shadow by the
# ramdisk agent (rescue.finalize_rescue).  root itself cannot log in.
ssh_users() {
  mkdir -p /etc /root /home/rescue
  printf 'root:x:0:0:root:/root:/bin/sh\nrescue:x:0:0:rescue:/home/rescue:/bin/sh\n' >/etc/passwd
  echo "root:x:0:" >/etc/group
  grep -q '^root:' /etc/shadow 2>/dev/null || echo 'root:*:1:0:99999:7:::' >>/etc/shadow
  chmod 600 /etc/shadow
  echo /bin/sh >/etc/shells
}

# ssh_server PORT: dropbear on PORT (default 22) with a host key made now
# (ed25519: made in well under a second even on an emulated CPU), password
# logins for the users in /etc/passwd and /etc/shadow, its log on the console.
ssh_server() {
  mkdir -p /etc/dropbear /dev/pts
  mount -t devpts devpts /dev/pts 2>/dev/null
  KEY=/etc/dropbear/dropbear_ed25519_host_key
  if ! dropbearkey -t ed25519 -f "$KEY" >/run/dropbearkey.log 2>&1; then
    say "ssh: no host key: $(tail -n 1 /run/dropbearkey.log)"
    return 1
  fi
  say "ssh: host key $(dropbearkey -y -f "$KEY" | sed -n 's/^Fingerprint: //p')"
  dropbear -F -E -r "$KEY" -p "${1:-22}" 2>&1 | sed "s/^/$TAG: sshd: /" &
  # Said once the port listens (state 0A in /proc/net/tcp), not merely started.
  hex=$(printf ':%04X ' "${1:-22}")
  i=0
  while ! grep -q "^ *[0-9]*: [0-9A-F]*$hex[0-9A-F:]* 0A " /proc/net/tcp && [ "$i" -lt 50 ]; do
    usleep 100000
    i=$((i + 1))
  done
  say "ssh: dropbear listening on port ${1:-22}"
}
