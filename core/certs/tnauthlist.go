package certs

import (
	"encoding/asn1"
	"strconv"

	"github.com/stirgate/stirgate/core/stir"
)

// OIDTNAuthList is the TNAuthList certificate extension (RFC 8226 §9).
var OIDTNAuthList = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 26}

// Limits that bound hostile input. A SHAKEN certificate carries one entry
// with a four-character SPC; the limits leave room for RFC 8226 uses beyond
// SHAKEN without letting an x5u body make us do unbounded work.
const (
	maxTNAuthListBytes = 4096
	maxTNEntries       = 64
	maxSPCLen          = 64
	maxTNLen           = 15 // TelephoneNumber ::= IA5String (SIZE (1..15))
	maxRangeCount      = 1 << 30
)

// DER tags used by TNAuthList. The RFC 8226 module uses EXPLICIT tags, so
// each CHOICE arm is a constructed context tag wrapping the universal type;
// ATIS-1000080 spells the SPC arm out as 30 L A0 L 16 L <spc>.
const (
	tagSequence  = 0x30
	tagInteger   = 0x02
	tagIA5String = 0x16
	tagSPC       = 0xa0 // [0] EXPLICIT ServiceProviderCode
	tagRange     = 0xa1 // [1] EXPLICIT TelephoneNumberRange
	tagOne       = 0xa2 // [2] EXPLICIT TelephoneNumber
)

// TNAuthList is the decoded TNAuthorizationList: the numbers or the service
// provider code (SPC) a certificate vouches for.
type TNAuthList []TNEntry

// TNEntry is one TNEntry CHOICE; exactly one field is set.
type TNEntry struct {
	SPC   string   // service provider code (OCN in the US)
	Range *TNRange // a block of consecutive numbers
	TN    string   // a single telephone number
}

// TNRange is a TelephoneNumberRange: Count numbers starting at Start.
type TNRange struct {
	Start string
	Count int
}

// SPC returns the first service provider code in l, or "" when l has none.
// SHAKEN certificates carry exactly one; CheckProfile enforces that.
func (l TNAuthList) SPC() string {
	for _, e := range l {
		if e.SPC != "" {
			return e.SPC
		}
	}
	return ""
}

// spcCount is the number of SPC entries in l.
func (l TNAuthList) spcCount() int {
	n := 0
	for _, e := range l {
		if e.SPC != "" {
			n++
		}
	}
	return n
}

func tnaErr(format string, args ...any) error {
	return stir.ErrCertNoTNAuth.Withf("TNAuthList: "+format, args...)
}

// ParseTNAuthList decodes the DER value of a TNAuthList extension. It is
// strict: DER only (definite, minimal lengths), explicit context tags, no
// trailing bytes at any level, at least one entry, non-empty printable SPCs,
// telephone numbers of 1-15 characters from 0-9, # and *, and a range count
// of at least 2 (RFC 8226 INTEGER (2..MAX)). Errors are stir.ErrCertNoTNAuth.
func ParseTNAuthList(der []byte) (TNAuthList, error) {
	if len(der) > maxTNAuthListBytes {
		return nil, tnaErr("%d bytes exceeds %d", len(der), maxTNAuthListBytes)
	}
	tag, body, rest, ok := readTLV(der)
	if !ok || tag != tagSequence {
		return nil, tnaErr("not a DER SEQUENCE")
	}
	if len(rest) != 0 {
		return nil, tnaErr("%d trailing bytes", len(rest))
	}
	if len(body) == 0 {
		return nil, tnaErr("empty list")
	}
	// Almost every list has one entry: size for it and let append grow.
	list := make(TNAuthList, 0, 1)
	for len(body) > 0 {
		if len(list) == maxTNEntries {
			return nil, tnaErr("more than %d entries", maxTNEntries)
		}
		var inner []byte
		tag, inner, body, ok = readTLV(body)
		if !ok {
			return nil, tnaErr("entry %d: bad DER", len(list))
		}
		e, err := parseTNEntry(tag, inner)
		if err != nil {
			return nil, tnaErr("entry %d: %v", len(list), err)
		}
		list = append(list, e)
	}
	return list, nil
}

type parseError string

func (e parseError) Error() string { return string(e) }

func parseTNEntry(tag byte, b []byte) (TNEntry, error) {
	switch tag {
	case tagSPC:
		s, err := readIA5(b, "SPC")
		if err != nil {
			return TNEntry{}, err
		}
		if err := checkSPC(s); err != nil {
			return TNEntry{}, err
		}
		return TNEntry{SPC: string(s)}, nil
	case tagOne:
		s, err := readIA5(b, "TN")
		if err != nil {
			return TNEntry{}, err
		}
		if err := checkTN(s); err != nil {
			return TNEntry{}, err
		}
		return TNEntry{TN: string(s)}, nil
	case tagRange:
		t, seq, rest, ok := readTLV(b)
		if !ok || t != tagSequence || len(rest) != 0 {
			return TNEntry{}, parseError("range: not a single SEQUENCE")
		}
		var start, count []byte
		t, start, seq, ok = readTLV(seq)
		if !ok || t != tagIA5String {
			return TNEntry{}, parseError("range: start is not an IA5String")
		}
		if err := checkTN(start); err != nil {
			return TNEntry{}, err
		}
		t, count, seq, ok = readTLV(seq)
		if !ok || t != tagInteger {
			return TNEntry{}, parseError("range: count is not an INTEGER")
		}
		if len(seq) != 0 {
			return TNEntry{}, parseError("range: trailing elements")
		}
		n, err := readCount(count)
		if err != nil {
			return TNEntry{}, err
		}
		return TNEntry{Range: &TNRange{Start: string(start), Count: n}}, nil
	}
	return TNEntry{}, parseError("unknown tag 0x" + strconv.FormatUint(uint64(tag), 16))
}

// readIA5 unwraps the IA5String inside an explicit tag, rejecting anything
// after it.
func readIA5(b []byte, what string) ([]byte, error) {
	t, s, rest, ok := readTLV(b)
	if !ok || t != tagIA5String || len(rest) != 0 {
		return nil, parseError(what + ": not a single IA5String")
	}
	return s, nil
}

// checkSPC accepts printable IA5 (0x20-0x7e). Control characters are IA5
// too, but an SPC that carries them can only be an attack on a log line.
func checkSPC(s []byte) error {
	if len(s) == 0 {
		return parseError("empty SPC")
	}
	if len(s) > maxSPCLen {
		return parseError("SPC longer than " + strconv.Itoa(maxSPCLen))
	}
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return parseError("SPC has non-printable or non-IA5 byte 0x" + strconv.FormatUint(uint64(c), 16))
		}
	}
	return nil
}

func checkTN(s []byte) error {
	if len(s) == 0 || len(s) > maxTNLen {
		return parseError("TN length " + strconv.Itoa(len(s)) + " not in 1..15")
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '#' && c != '*' {
			return parseError("TN has a character outside 0-9#*")
		}
	}
	return nil
}

// readCount decodes a minimal, positive DER INTEGER in 2..maxRangeCount.
func readCount(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 5 {
		return 0, parseError("range: count out of bounds")
	}
	if b[0]&0x80 != 0 {
		return 0, parseError("range: negative count")
	}
	if len(b) > 1 && b[0] == 0 && b[1]&0x80 == 0 {
		return 0, parseError("range: count not minimally encoded")
	}
	n := 0
	for _, c := range b {
		n = n<<8 | int(c)
	}
	if n < 2 || n > maxRangeCount {
		return 0, parseError("range: count " + strconv.Itoa(n) + " not in 2.." + strconv.Itoa(maxRangeCount))
	}
	return n, nil
}

// readTLV reads one DER element. Every tag in a TNAuthList is a low tag
// number, so a multi-byte tag is rejected rather than decoded. Lengths must
// be definite and minimal (DER, X.690 §10.1).
func readTLV(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, false
	}
	n := int(b[1])
	b = b[2:]
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 3 || len(b) < k || b[0] == 0 {
			return 0, nil, nil, false
		}
		n = 0
		for _, c := range b[:k] {
			n = n<<8 | int(c)
		}
		if n < 0x80 {
			return 0, nil, nil, false
		}
		b = b[k:]
	}
	if n > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:n], b[n:], true
}

// MarshalTNAuthList encodes l as the DER value of a TNAuthList extension.
// It refuses anything ParseTNAuthList would refuse, so that what we issue
// is what we accept.
func MarshalTNAuthList(l TNAuthList) ([]byte, error) {
	if len(l) == 0 {
		return nil, tnaErr("empty list")
	}
	if len(l) > maxTNEntries {
		return nil, tnaErr("more than %d entries", maxTNEntries)
	}
	var body []byte
	for i, e := range l {
		set := 0
		if e.SPC != "" {
			set++
		}
		if e.TN != "" {
			set++
		}
		if e.Range != nil {
			set++
		}
		if set != 1 {
			return nil, tnaErr("entry %d: want exactly one of SPC, Range, TN", i)
		}
		switch {
		case e.SPC != "":
			if err := checkSPC([]byte(e.SPC)); err != nil {
				return nil, tnaErr("entry %d: %v", i, err)
			}
			body = appendTLV(body, tagSPC, appendTLV(nil, tagIA5String, []byte(e.SPC)))
		case e.TN != "":
			if err := checkTN([]byte(e.TN)); err != nil {
				return nil, tnaErr("entry %d: %v", i, err)
			}
			body = appendTLV(body, tagOne, appendTLV(nil, tagIA5String, []byte(e.TN)))
		default:
			if err := checkTN([]byte(e.Range.Start)); err != nil {
				return nil, tnaErr("entry %d: %v", i, err)
			}
			if e.Range.Count < 2 || e.Range.Count > maxRangeCount {
				return nil, tnaErr("entry %d: range count %d not in 2..%d", i, e.Range.Count, maxRangeCount)
			}
			seq := appendTLV(nil, tagIA5String, []byte(e.Range.Start))
			seq = appendTLV(seq, tagInteger, minimalInt(e.Range.Count))
			body = appendTLV(body, tagRange, appendTLV(nil, tagSequence, seq))
		}
	}
	out := appendTLV(nil, tagSequence, body)
	if len(out) > maxTNAuthListBytes {
		return nil, tnaErr("%d bytes exceeds %d", len(out), maxTNAuthListBytes)
	}
	return out, nil
}

// minimalInt is the DER content of a non-negative INTEGER.
func minimalInt(n int) []byte {
	var b []byte
	for {
		b = append([]byte{byte(n)}, b...)
		n >>= 8
		if n == 0 {
			break
		}
	}
	if b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// appendTLV appends one DER element with a low tag number.
func appendTLV(dst []byte, tag byte, content []byte) []byte {
	dst = append(dst, tag)
	n := len(content)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 0x100:
		dst = append(dst, 0x81, byte(n))
	case n < 0x10000:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, content...)
}
