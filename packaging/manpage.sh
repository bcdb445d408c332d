#!/bin/sh
# manpage.sh BIN VERSION DATE: writes stirgate(1) to stdout. The prose is
# here; every command's usage and flags come from BIN's own help, so the
# page never drifts from the flags it describes. `make install` runs it.
set -eu
bin=$1 version=$2 date=$3

# roff-escape help text for a no-fill block: backslashes, minus signs, and
# a leading dot or quote that roff would take for a request.
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

# help CMD...: the usage text of a command, as a no-fill block.
help() {
	echo '.PP'
	echo '.RS 4'
	echo '.nf'
	"$bin" "$@" -h 2>&1 | esc || true
	echo '.fi'
	echo '.RE'
}

cat <<EOF
.TH STIRGATE 1 "$date" "stirgate $version" "User Commands"
.SH NAME
stirgate \\- STIR/SHAKEN caller\\-ID signing and verification service
.SH SYNOPSIS
.B stirgate
.I command
.RI [ flags ]
.SH DESCRIPTION
.B stirgate
signs (STI\\-AS) and verifies (STI\\-VS) caller identity with STIR/SHAKEN
PASSporTs (RFC 8224, RFC 8225, RFC 8588, ATIS\\-1000074). One configuration
file (TOML) drives every command; the commented default is
.IR /usr/share/doc/stirgate/examples/stirgate.toml .
.PP
.B stirgate serve
runs the HTTP signing and verification API, publishes the signing
certificate chain (the x5u target), serves metrics and the outcome
dashboard, and answers SIP INVITEs as a redirect server.
.B stirgate agi
is a FastAGI server for Asterisk dialplans, and
.B stirgate ami
records the outcomes Asterisk reports over its manager interface.
Every outcome is kept in the outcome store (SQLite, or PostgreSQL for a
cluster).
.SH COMMANDS
EOF

"$bin" 2>&1 | sed -n 's/^  \([a-z][a-z]*\)  *\(.*\)$/\1\t\2/p' | while IFS="$(printf '\t')" read -r cmd summary; do
	printf '.SS %s\n' "$cmd"
	printf '%s\n' "$summary" | esc
	case $cmd in
	version) ;;
	cert)
		help cert
		for sub in lab check key csr; do help cert "$sub"; done
		;;
	*) help "$cmd" ;;
	esac
done

cat <<'EOF'
.SH FILES
.TP
.I /etc/stirgate/stirgate.toml
The configuration of the packaged services. A configuration in an
.I etc
directory keeps its state in
.I /var/lib/stirgate
and its x5u cache in
.IR /var/cache/stirgate ;
one elsewhere keeps both in
.I .stirgate
beside it (the lab layout).
.TP
.I /var/lib/stirgate
The outcome store, its spill file and journal, the lab PKI.
.TP
.I /var/cache/stirgate
Fetched x5u certificates and CRLs.
.SH SIGNALS
.TP
.B SIGHUP
.B serve
reloads its configuration and credentials without dropping a call
.RB ( "systemctl reload stirgate" ).
.TP
.BR SIGTERM ", " SIGINT
Stop accepting work, finish what is in flight and store every outcome.
.SH EXIT STATUS
0 on success, 1 on a failure while running, 2 on a usage or configuration
error.
.SH SEE ALSO
.BR systemctl (1),
.BR kamailio (8),
.BR asterisk (8);
.I /usr/share/doc/stirgate/README.md.gz
EOF
