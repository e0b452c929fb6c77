# The ramdisk's SSH server (dropbear, from Debian's dropbear-bin), started by
# /init on request — by the rescue mode today (ramdisk-init.sh), by any mode that
# needs a shell on the host.  Sourced after common.sh (busybox sh).

# The rescue user of IPA's rescue mode: root's powers (IPA's gets passwordless
# sudo; the ramdisk has no sudo), its password hash set in /etc/shadow by the
# ramdisk agent (rescue.finalize_rescue).  root has no password: it logs in only
# with the key the ansible deploy authorizes (ssh_authorize).
ssh_users() {
  mkdir -p /etc /root /home/rescue
  printf 'root:x:0:0:root:/root:/bin/sh\nrescue:x:0:0:rescue:/home/rescue:/bin/sh\n' >/etc/passwd
  echo "root:x:0:" >/etc/group
  grep -q '^root:' /etc/shadow 2>/dev/null || echo 'root:*:1:0:99999:7:::' >>/etc/shadow
  chmod 600 /etc/shadow
  echo /bin/sh >/etc/shells
}

# The conductor's key ($1: "<type> <base64>") for root: the ansible deploy's
# playbooks log in with it (and with nothing else: ssh_server's -s).
ssh_authorize() {
  mkdir -p /root/.ssh
  chmod 700 /root/.ssh
  echo "$1 metalnic-conductor" >/root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
}

# ssh_server PORT [OPTIONS]: dropbear on PORT (default 22) with a host key made now
# (ed25519: made in well under a second even on an emulated CPU), password
# logins for the users in /etc/passwd and /etc/shadow unless OPTIONS say
# otherwise (-s: keys only), its log on the console.  The public host key goes
# to /run/ssh_host_key.pub (the agent reports it to the conductor).
ssh_server() {
  mkdir -p /etc/dropbear /dev/pts /var/log /var/run
  # the login records dropbear keeps (it complains on every login without them)
  : >>/var/log/lastlog
  : >>/var/log/wtmp
  : >>/var/run/utmp
  mount -t devpts devpts /dev/pts 2>/dev/null
  KEY=/etc/dropbear/dropbear_ed25519_host_key
  if ! dropbearkey -t ed25519 -f "$KEY" >/run/dropbearkey.log 2>&1; then
    say "ssh: no host key: $(tail -n 1 /run/dropbearkey.log)"
    return 1
  fi
  dropbearkey -y -f "$KEY" | grep '^ssh-' >/run/ssh_host_key.pub
  say "ssh: host key $(dropbearkey -y -f "$KEY" | sed -n 's/^Fingerprint: //p')"
  # shellcheck disable=SC2086  # $2: dropbear's options, word-split on purpose
  dropbear -F -E -r "$KEY" -p "${1:-22}" $2 2>&1 | sed "s/^/$TAG: sshd: /" &
  # Said once the port listens (state 0A in /proc/net/tcp), not merely started.
  hex=$(printf ':%04X ' "${1:-22}")
  i=0
  while ! grep -q "^ *[0-9]*: [0-9A-F]*$hex[0-9A-F:]* 0A " /proc/net/tcp && [ "$i" -lt 50 ]; do
    usleep 100000
    i=$((i + 1))
  done
  say "ssh: dropbear listening on port ${1:-22}"
}
