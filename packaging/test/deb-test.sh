#!/usr/bin/env bash
# The proof of `make deb`: lintian finds no error, then the packages are
# installed with apt into a throwaway root and exercised there.
#
# The throwaway root is an overlay over this system's own root, in a mount,
# network and PID namespace of its own: apt, dpkg and the maintainer scripts
# (adduser, dpkg-divert) run for real against a real package database,
# dependencies are the installed ones (no mirror needed, seconds not
# minutes), every write lands in a tmpfs that vanishes with the namespace,
# and the fixed ports of the packaged config (8443, 5060) are on a
# loopback nobody else shares. When the script ends, the kernel ends every
# process it started (it is PID 1 of its namespace). It needs root, like
# any install.
#
#   deb-test.sh DEB_DIR MULTIARCH
set -euo pipefail

if [[ ${1:-} != --inside ]]; then
	debs=$(cd "$1" && pwd) ma=$2
	[[ $(id -u) -eq 0 ]] || { echo "deb-test: needs root (mount namespace, chroot, apt)"; exit 1; }
	for c in lintian unshare chroot ip systemd-analyze kamailio; do
		command -v "$c" >/dev/null || { echo "deb-test: $c missing (make test-deps)"; exit 1; }
	done
	echo "deb-test: lintian"
	lintian --fail-on error "$debs"/*.deb
	exec unshare --mount --net --pid --fork -- "$0" --inside "$debs" "$ma" "$(cd "$(dirname "$0")" && pwd)"
fi
debs=$2 ma=$3 here=$4

fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }
step() { echo "deb-test: $*"; }

mount --make-rprivate /
ip link set lo up
t=$(mktemp -d /tmp/deb-test.XXXXXX)
mount -t tmpfs tmpfs "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
R=$t/root
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs sysfs "$R/sys"
for d in run tmp var/tmp; do mount -t tmpfs tmpfs "$R/$d"; done
mkdir -p "$R/root/debs" "$R/root/pkgtest"
cp "$debs"/*.deb "$R/root/debs/"
cp "$here/kamailio.cfg" "$here/verify.lua" "$R/root/pkgtest/"
inroot() { chroot "$R" "$@"; }

pids=()
stop() { # the services started below, before packages are removed
	local p i
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
# The mounts go with the namespace; the empty directory they were on is
# this system's and goes here.
trap 'stop; umount -R -l "$t" 2>/dev/null || true; rmdir "$t" 2>/dev/null || true' EXIT

lib=/usr/lib/$ma
debian_sum=$(inroot sha256sum "$(inroot readlink -f "$lib/libsecsipid.so.1")" | cut -d' ' -f1)

step "apt install ./*.deb"
inroot sh -c 'cd /root/debs && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	./stirgate_*.deb ./libstirgate1_*.deb ./libstirgate-dev_*.deb ./lua-stirgate_*.deb ./stirgate-secsipid_*.deb' \
	> "$t/apt.log" 2>&1 || { cat "$t/apt.log"; fail "apt install"; }
inroot dpkg --audit | grep . && fail "dpkg --audit reports broken packages"

step "files, user, conffile"
for f in /usr/bin/stirgate /etc/stirgate/stirgate.toml /lib/systemd/system/stirgate.service \
	/lib/systemd/system/stirgate-agi.service /lib/systemd/system/stirgate-ami.service \
	"$lib/libstirgate.so.1" /usr/include/stirgate.h "$lib/lua/5.1/stirgate.so" /usr/share/luajit-2.1.0-beta3/stirgate.lua; do
	[[ -e $R$f ]] || fail "$f not installed"
done
inroot getent passwd stirgate | grep -q ':/var/lib/stirgate:/usr/sbin/nologin$' || fail "no system user stirgate: $(inroot getent passwd stirgate)"
[[ $(inroot stat -c %U:%G:%a /etc/stirgate/stirgate.toml) == root:stirgate:640 ]] || fail "config owner/mode: $(inroot stat -c %U:%G:%a /etc/stirgate/stirgate.toml)"
inroot dpkg-query -W -f='${Conffiles}\n' stirgate | grep -q '^ /etc/stirgate/stirgate.toml ' || fail "stirgate.toml is not a conffile"
[[ $(inroot pkg-config --cflags --libs stirgate) =~ ^-lstirgate\ *$ ]] || fail "pkg-config stirgate: $(inroot pkg-config --cflags --libs stirgate)"
printf '#include <stirgate.h>\nint main(void){return 0;}\n' > "$R/tmp/h.c"
inroot cc -o /tmp/h /tmp/h.c -lstirgate || fail "a program against libstirgate-dev does not build"

# The man page is there and renders without a groff warning.
[[ -e $R/usr/share/man/man1/stirgate.1.gz ]] || fail "stirgate(1) not installed"
man --warnings -l "$R/usr/share/man/man1/stirgate.1.gz" 2>"$t/man.err" | grep -q 'stirgate serve' || fail "stirgate(1) does not render"
grep . "$t/man.err" && fail "stirgate(1) has groff warnings"
PIE=$(readelf -h "$R/usr/bin/stirgate" | awk '/Type:/ {print $2}')
[[ $PIE == DYN ]] || fail "/usr/bin/stirgate is not position-independent (ELF type $PIE)"

step "systemd-analyze verify"
inroot systemd-analyze verify /lib/systemd/system/stirgate.service /lib/systemd/system/stirgate-agi.service \
	/lib/systemd/system/stirgate-ami.service > "$t/verify.log" 2>&1 || { cat "$t/verify.log"; fail "systemd-analyze verify"; }
grep -q . "$t/verify.log" && { cat "$t/verify.log"; fail "systemd-analyze verify has complaints"; }
inroot systemd-analyze security --offline=yes --threshold=30 /lib/systemd/system/stirgate.service > "$t/security.log" 2>&1 \
	|| { tail -5 "$t/security.log"; fail "stirgate.service exposure above 3.0"; }
grep 'Overall exposure' "$t/security.log" | sed 's/^/deb-test:   stirgate.service: /'

step "config check and serve, as the service runs them"
# systemd makes these (StateDirectory=, CacheDirectory=) and starts in the
# first; the service user reads the packaged config.
inroot install -d -o stirgate -g stirgate -m 0750 /var/lib/stirgate /var/cache/stirgate
as_service() { chroot --userspec=stirgate:stirgate "$R" env -C /var/lib/stirgate "$@"; }
as_service /usr/bin/stirgate config check /etc/stirgate/stirgate.toml || fail "config check of the packaged config"
as_service /usr/bin/stirgate serve --config /etc/stirgate/stirgate.toml > "$t/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do
	grep -q 'msg="http listening"' "$t/serve.log" && break
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$t/serve.log"; fail "serve exited"; }
	sleep 0.1
done
grep -q 'msg="http listening"' "$t/serve.log" || { cat "$t/serve.log"; fail "serve did not listen in 60 s"; }
[[ -e $R/var/lib/stirgate/lab/sp.key ]] || fail "the lab is not in /var/lib/stirgate/lab"
[[ -e $R/var/lib/stirgate/outcomes.db ]] || fail "the outcome store is not /var/lib/stirgate/outcomes.db"
[[ -e $R/etc/stirgate/.stirgate ]] && fail "state written under /etc/stirgate"
# A call signed with the lab key, verified through the x5u URL that serve
# publishes on loopback.
identity=$(inroot /usr/bin/stirgate sign --key /var/lib/stirgate/lab/sp.key --x5u https://127.0.0.1:8443/certs/sp.pem \
	--orig 12155550121 --dest 12155550122 --attest A) || fail "sign"
out=$(as_service /usr/bin/stirgate verify --config /etc/stirgate/stirgate.toml --identity "$identity" \
	--from '<sip:+12155550121@127.0.0.1>' --to '<sip:+12155550122@127.0.0.1>') || { echo "$out"; fail "verify through serve"; }
grep -q '"result":"pass"' <<<"$out" || fail "verify: $out"

step "Kamailio: app_lua, the packaged Lua module and libstirgate"
chroot "$R" kamailio -f /root/pkgtest/kamailio.cfg -DD -E -Y /run > "$t/kamailio.log" 2>&1 &
pids+=($!)
sip() { # sip IDENTITY-HEADER-LINE: one OPTIONS, the reply (or nothing)
	local id=$1 call="deb-test-$RANDOM$RANDOM"
	printf 'OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK%s;rport\r\nMax-Forwards: 70\r\nFrom: <sip:+12155550121@127.0.0.1>;tag=1\r\nTo: <sip:+12155550122@127.0.0.1>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n%sContent-Length: 0\r\n\r\n' \
		"$call" "$call" "$id" > "$t/options.sip"
	exec 3<>/dev/udp/127.0.0.1/5060 || return 0
	# One datagram: dd writes what it read from the file in one write.
	dd if="$t/options.sip" bs=65535 count=1 status=none >&3
	timeout 5 dd bs=65535 count=1 status=none <&3 2>/dev/null || true
	exec 3<&-
}
reply=
for _ in $(seq 60); do
	kill -0 "${pids[-1]}" 2>/dev/null || { cat "$t/kamailio.log"; fail "kamailio exited"; }
	reply=$(sip "Identity: $identity"$'\r\n' | tr -d '\r')
	[[ -n $reply ]] && break
	sleep 0.5
done
[[ $reply == "SIP/2.0 200 pass"* ]] || { echo "$reply"; tail -30 "$t/kamailio.log"; fail "Kamailio did not verify through the packaged module"; }
grep -q '^X-Stirgate-Verstat: TN-Validation-Passed' <<<"$reply" || { echo "$reply"; fail "verstat"; }
maps=$(inroot sh -c 'cat /proc/[0-9]*/maps 2>/dev/null' || true)
grep -q " $lib/lua/5.1/stirgate.so$" <<<"$maps" || fail "no process mapped $lib/lua/5.1/stirgate.so"
grep -q " $lib/libstirgate.so.1$" <<<"$maps" || fail "no process mapped $lib/libstirgate.so.1"

# LuaJIT finds the FFI binding where Debian's LuaJIT looks, and it
# verifies the same call through libstirgate.
out=$(inroot env -C /tmp IDENTITY="$identity" luajit -e '
	local sg = require "stirgate"
	assert(debug.getinfo(sg.open, "S").source == "@/usr/share/luajit-2.1.0-beta3/stirgate.lua",
		"not the packaged FFI binding: " .. debug.getinfo(sg.open, "S").source)
	local h = sg.open("/etc/stirgate/stirgate.toml")
	local r, err = h:check{identity = os.getenv("IDENTITY"), from = "<sip:+12155550121@127.0.0.1>", to = "<sip:+12155550122@127.0.0.1>"}
	io.write(r and r.result or tostring(err))') || fail "luajit: $out"
[[ $out == pass ]] || fail "LuaJIT binding: $out"

step "stirgate-secsipid: diverts libsecsipid.so.1, removal restores it"
[[ $(inroot dpkg-divert --listpackage "$lib/libsecsipid.so.1") == stirgate-secsipid ]] || fail "libsecsipid.so.1 not diverted"
[[ $(inroot dpkg-divert --listpackage "$lib/libsecsipid.so.1.0.0") == stirgate-secsipid ]] || fail "libsecsipid.so.1.0.0 not diverted"
# What Kamailio's secsipid module loads is ours (/lib is /usr/lib).
loaded=$(inroot ldd "$lib/kamailio/modules/secsipid_proc.so" | sed -n 's/^\s*libsecsipid.so.1 => \(\S*\) .*/\1/p')
[[ -n $loaded ]] || fail "secsipid_proc.so does not resolve libsecsipid.so.1"
ours=$(inroot readlink -f "$loaded")
inroot dpkg -S "$ours" | grep -qx "diversion by stirgate-secsipid from: $ours" || fail "$ours: $(inroot dpkg -S "$ours")"
inroot dpkg --verify stirgate-secsipid || fail "the drop-in's files are not the packaged ones"
[[ $(inroot sha256sum "$ours" | cut -d' ' -f1) != "$debian_sum" ]] || fail "libsecsipid.so.1 is still Debian's"
inroot dpkg -r stirgate-secsipid > "$t/remove.log" 2>&1 || { cat "$t/remove.log"; fail "dpkg -r stirgate-secsipid"; }
inroot dpkg-divert --list | grep -q stirgate-secsipid && fail "diversions left: $(inroot dpkg-divert --list | grep stirgate)"
loaded=$(inroot ldd "$lib/kamailio/modules/secsipid_proc.so" | sed -n 's/^\s*libsecsipid.so.1 => \(\S*\) .*/\1/p')
[[ $(inroot sha256sum "$(inroot readlink -f "$loaded")" | cut -d' ' -f1) == "$debian_sum" ]] || fail "Debian's libsecsipid.so.1 is not back"
inroot dpkg --verify libsecsipid1 || fail "libsecsipid1 does not verify after removal"
[[ -e $R$lib/stirgate-secsipid ]] && fail "$lib/stirgate-secsipid left behind"

step "purge"
stop
inroot dpkg --purge stirgate lua-stirgate libstirgate-dev libstirgate1 stirgate-secsipid > "$t/purge.log" 2>&1 || { cat "$t/purge.log"; fail "purge"; }
for f in /etc/stirgate /var/lib/stirgate /var/cache/stirgate /usr/bin/stirgate "$lib/libstirgate.so.1"; do
	[[ -e $R$f ]] && fail "$f left after purge"
done
inroot dpkg --audit | grep . && fail "dpkg --audit after purge"
step "ok"
