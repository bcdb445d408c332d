// Command secsipid is libsecsipid.so.1 rebuilt on the stirgate core: a
// drop-in for the library behind Kamailio's secsipid module, with the C
// signatures and conventions of libsecsipid 1.2 (see secsipid.h and
// README.md). Build it with -buildmode=c-shared and the SONAME
// libsecsipid.so.1; `make secsipid` does both.
//
// Every exported function recovers from panics and returns an error code,
// clears its output pointers before doing anything else, and never lets a
// NUL-less, over-long or NULL argument reach the core unchecked. The
// public names are C functions in shim.c that refuse to enter Go in a
// process forked after the library was loaded; the Go exports here are
// their internal sgsip_* halves.
package main

/*
#include <stdlib.h>
#include <string.h>

// Go 1.24+ takes randomness from the vDSO, which memcheck cannot see: the
// signature bytes, and every output built from them, would read as
// uninitialised under valgrind. Outputs are marked defined when the
// memcheck header is available; outside valgrind this is a no-op.
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define SG_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#endif
#endif
#ifndef SG_DEFINED
#define SG_DEFINED(p, n) ((void)0)
#endif

// sg_copy returns a malloc'ed NUL-terminated copy of n bytes at p.
static char *sg_copy(const char *p, size_t n)
{
	char *r = malloc(n + 1);
	if(r == NULL)
		return NULL;
	if(n > 0)
		memcpy(r, p, n);
	r[n] = '\0';
	SG_DEFINED(r, n + 1);
	return r;
}
*/
import "C"

import (
	"log/slog"
	"unsafe"
)

var lib = newLibrary()

func main() {}

// guard turns a panic into retInternal so that no input can abort a
// Kamailio worker. Deferred first in every export.
func guard(ret *C.int) {
	if r := recover(); r != nil {
		lib.log.Error("libsecsipid: recovered panic", slog.Any("panic", r))
		*ret = retInternal
	}
}

// goString copies a NUL-terminated C string; ok is false for NULL or a
// string longer than maxArgument.
func goString(p *C.char) (string, bool) {
	if p == nil {
		return "", false
	}
	n := C.strnlen(p, maxArgument+1)
	if n > maxArgument {
		return "", false
	}
	return C.GoStringN(p, C.int(n)), true
}

// goStringLen copies a C buffer of n bytes, or a NUL-terminated string
// when n is 0 (the API's convention: Kamailio passes header bodies that
// are not NUL-terminated, with their length).
func goStringLen(p *C.char, n C.int) (string, bool) {
	switch {
	case p == nil || n < 0 || n > maxArgument:
		return "", false
	case n == 0:
		return goString(p)
	}
	return C.GoStringN(p, n), true
}

// optString is goString where NULL means "".
func optString(p *C.char) (string, bool) {
	if p == nil {
		return "", true
	}
	return goString(p)
}

// output stores s as a malloc'ed NUL-terminated copy in *out and returns
// its length, which is exactly strlen(*out).
func output(out **C.char, s string) C.int {
	p := C.sg_copy((*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))
	if p == nil {
		return retInternal
	}
	*out = p
	return C.int(len(s))
}

//export sgsip_SecSIPIDSignJSONHP
func sgsip_SecSIPIDSignJSONHP(headerJSON, payloadJSON, prvkeyPath *C.char, outPtr **C.char) (ret C.int) {
	defer guard(&ret)
	return signJSONExport(headerJSON, payloadJSON, prvkeyPath, nil, outPtr)
}

//export sgsip_SecSIPIDSignJSONHPPrvKey
func sgsip_SecSIPIDSignJSONHPPrvKey(headerJSON, payloadJSON, prvkeyData *C.char, outPtr **C.char) (ret C.int) {
	defer guard(&ret)
	return signJSONExport(headerJSON, payloadJSON, nil, prvkeyData, outPtr)
}

func signJSONExport(headerJSON, payloadJSON, keyPath, keyData *C.char, outPtr **C.char) C.int {
	if outPtr == nil {
		return retErr
	}
	*outPtr = nil
	h, ok1 := goString(headerJSON)
	p, ok2 := goString(payloadJSON)
	k, ok3 := keyArg(keyPath, keyData)
	if !ok1 || !ok2 || !ok3 {
		return retErr
	}
	s, rc := lib.signJSON(h, p, k)
	if rc != retOK {
		return C.int(rc)
	}
	return output(outPtr, s)
}

func keyArg(path, data *C.char) (keySource, bool) {
	if path != nil {
		p, ok := goString(path)
		return keySource{path: p}, ok && p != ""
	}
	d, ok := goString(data)
	return keySource{data: []byte(d)}, ok && d != ""
}

//export sgsip_SecSIPIDGetIdentity
func sgsip_SecSIPIDGetIdentity(origTN, destTN, attestVal, origID, x5uVal, prvkeyPath *C.char, outPtr **C.char) (ret C.int) {
	defer guard(&ret)
	return getIdentityExport(origTN, destTN, attestVal, origID, x5uVal, prvkeyPath, nil, outPtr)
}

//export sgsip_SecSIPIDGetIdentityPrvKey
func sgsip_SecSIPIDGetIdentityPrvKey(origTN, destTN, attestVal, origID, x5uVal, prvkeyData *C.char, outPtr **C.char) (ret C.int) {
	defer guard(&ret)
	return getIdentityExport(origTN, destTN, attestVal, origID, x5uVal, nil, prvkeyData, outPtr)
}

func getIdentityExport(origTN, destTN, attestVal, origID, x5uVal, keyPath, keyData *C.char, outPtr **C.char) C.int {
	if outPtr == nil {
		return retErr
	}
	*outPtr = nil
	o, ok1 := goString(origTN)
	d, ok2 := goString(destTN)
	a, ok3 := goString(attestVal)
	id, ok4 := optString(origID)
	x, ok5 := optString(x5uVal)
	k, ok6 := keyArg(keyPath, keyData)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return retErr
	}
	s, rc := lib.getIdentity(o, d, a, id, x, k)
	if rc != retOK {
		return C.int(rc)
	}
	return output(outPtr, s)
}

//export sgsip_SecSIPIDCheck
func sgsip_SecSIPIDCheck(identityVal *C.char, identityLen, expireVal C.int, pubkeyPath *C.char, timeoutVal C.int) (ret C.int) {
	defer guard(&ret)
	return checkExport(identityVal, identityLen, expireVal, pubkeyPath, nil, 0, timeoutVal, checkToken)
}

//export sgsip_SecSIPIDCheckFull
func sgsip_SecSIPIDCheckFull(identityVal *C.char, identityLen, expireVal C.int, pubkeyPath *C.char, timeoutVal C.int) (ret C.int) {
	defer guard(&ret)
	return checkExport(identityVal, identityLen, expireVal, pubkeyPath, nil, 0, timeoutVal, checkFull)
}

//export sgsip_SecSIPIDCheckFullPubKey
func sgsip_SecSIPIDCheckFullPubKey(identityVal *C.char, identityLen, expireVal C.int, pubkeyVal *C.char, pubkeyLen C.int) (ret C.int) {
	defer guard(&ret)
	if pubkeyVal == nil {
		return retErr
	}
	return checkExport(identityVal, identityLen, expireVal, nil, pubkeyVal, pubkeyLen, 0, checkFull)
}

func checkExport(identityVal *C.char, identityLen, expireVal C.int, keyPath, keyVal *C.char, keyLen, timeoutVal C.int, mode checkMode) C.int {
	v, ok := goStringLen(identityVal, identityLen)
	if !ok {
		return retErr
	}
	var k keySource
	if keyVal != nil {
		d, ok := goStringLen(keyVal, keyLen)
		if !ok || d == "" {
			return retCertInvalidFormat
		}
		k.data = []byte(d)
	} else if p, ok := optString(keyPath); !ok {
		return retErr
	} else {
		k.path = p
	}
	rc := lib.check(v, mode, int(expireVal), k, int(timeoutVal))
	if rc > 0 {
		rc = retErr // a check never returns a positive value
	}
	return C.int(rc)
}

//export sgsip_SecSIPIDSetFileCacheOptions
func sgsip_SecSIPIDSetFileCacheOptions(dirPath *C.char, expireVal C.int) (ret C.int) {
	defer guard(&ret)
	d, ok := optString(dirPath)
	if !ok {
		return retErr
	}
	return C.int(lib.setFileCache(d, int(expireVal)))
}

//export sgsip_SecSIPIDGetURLContent
func sgsip_SecSIPIDGetURLContent(urlVal *C.char, timeoutVal C.int, outPtr **C.char, outLen *C.int) (ret C.int) {
	// Kamailio 5.6 to 6.0 frees *outPtr after a failure without clearing
	// it first, so both outputs are cleared before anything can fail.
	if outPtr != nil {
		*outPtr = nil
	}
	if outLen != nil {
		*outLen = 0
	}
	defer guard(&ret)
	if outPtr == nil || outLen == nil {
		return retErr
	}
	u, ok := goString(urlVal)
	if !ok {
		return retHTTPInvalidURL
	}
	b, rc := lib.getURL(u, int(timeoutVal))
	if rc != retOK {
		return C.int(rc)
	}
	var src *C.char
	if len(b) > 0 {
		src = (*C.char)(unsafe.Pointer(&b[0]))
	}
	p := C.sg_copy(src, C.size_t(len(b)))
	if p == nil {
		return retInternal
	}
	*outPtr = p
	*outLen = C.int(len(b))
	return retOK
}

//export sgsip_SecSIPIDOptSetS
func sgsip_SecSIPIDOptSetS(optName, optVal *C.char) (ret C.int) {
	defer guard(&ret)
	n, ok1 := goString(optName)
	v, ok2 := optString(optVal)
	if !ok1 || !ok2 {
		return retErr
	}
	return C.int(lib.setS(n, v))
}

//export sgsip_SecSIPIDOptSetN
func sgsip_SecSIPIDOptSetN(optName *C.char, optVal C.int) (ret C.int) {
	defer guard(&ret)
	n, ok := goString(optName)
	if !ok {
		return retErr
	}
	return C.int(lib.setN(n, int(optVal)))
}

//export sgsip_SecSIPIDOptSetV
func sgsip_SecSIPIDOptSetV(optNameVal *C.char) (ret C.int) {
	defer guard(&ret)
	nv, ok := goString(optNameVal)
	if !ok {
		return retErr
	}
	return C.int(lib.setV(nv))
}

//export sgsip_SecSIPIDOptGetN
func sgsip_SecSIPIDOptGetN(optName *C.char) (ret C.int) {
	defer guard(&ret)
	n, ok := goString(optName)
	if !ok {
		return retErr
	}
	return C.int(lib.getN(n))
}
