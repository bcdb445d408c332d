package main

/*
#cgo CFLAGS: -O2 -Wall -Wextra -Wno-unused-parameter
#include <stdlib.h>
#include <string.h>
#include "stirgate.h"

void sg_record_error(int h, char *msg, size_t len);
*/
import "C"

import (
	"strings"
	"unsafe"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
)

func init() {
	recordError = func(h int, msg string) {
		C.sg_record_error(C.int(h), C.CString(msg), C.size_t(len(msg)))
	}
}

// gostr copies a C string of at most limit bytes; NULL is "". It never
// reads more than limit+1 bytes of p, so an unterminated or huge input
// costs nothing.
func gostr(p *C.char, limit int, what string) (string, error) {
	if p == nil {
		return "", nil
	}
	n := int(C.strnlen(p, C.size_t(limit+1)))
	if n > limit {
		return "", fail(codeTooLarge, "%s is longer than %d bytes", what, limit)
	}
	return C.GoStringN(p, C.int(n)), nil
}

// cstr returns a malloc'ed copy of s, or NULL for "".
func cstr(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// arg is one C string argument: where it is, its name for messages, and
// where its Go copy goes.
type arg struct {
	p    *C.char
	name string
	dst  *string
}

// readArgs copies the arguments in order, stopping at the first error.
func readArgs(args ...arg) error {
	for _, a := range args {
		v, err := gostr(a.p, maxInput, a.name)
		if err != nil {
			return err
		}
		*a.dst = v
	}
	return nil
}

//export sg_init_file
func sg_init_file(path *C.char) C.int {
	return C.int(run(-1, func() (int, error) {
		if path == nil {
			return 0, fail(codeInval, "path is NULL")
		}
		p, err := gostr(path, maxInput, "path")
		if err != nil {
			return 0, err
		}
		return openFile(p)
	}))
}

//export sg_init_toml
func sg_init_toml(text *C.char) C.int {
	return C.int(run(-1, func() (int, error) {
		if text == nil {
			return 0, fail(codeInval, "configuration text is NULL")
		}
		t, err := gostr(text, maxTOML, "configuration text")
		if err != nil {
			return 0, err
		}
		return openTOML(t)
	}))
}

//export sg_reload
func sg_reload(h C.int, path *C.char) C.int {
	return C.int(run(int(h), func() (int, error) {
		p, err := gostr(path, maxInput, "path")
		if err != nil {
			return 0, err
		}
		return 0, reload(int(h), p)
	}))
}

//export sg_close
func sg_close(h C.int) C.int {
	return C.int(run(int(h), func() (int, error) { return 0, closeHandle(int(h)) }))
}

//export sg_sign
func sg_sign(h C.int, orig, dest, attest, origid *C.char, identity, date **C.char) C.int {
	if identity != nil {
		*identity = nil
	}
	if date != nil {
		*date = nil
	}
	return C.int(run(int(h), func() (int, error) {
		var in signIn
		if orig == nil || dest == nil {
			return 0, fail(codeInval, "orig and dest are required")
		}
		if err := readArgs(arg{orig, "orig", &in.Orig}, arg{dest, "dest", &in.Dest},
			arg{attest, "attest", &in.Attest}, arg{origid, "origid", &in.OrigID}); err != nil {
			return 0, err
		}
		r, err := sign(int(h), in)
		if err != nil {
			return 0, err
		}
		if identity != nil {
			*identity = C.CString(r.Identity)
		}
		if date != nil {
			*date = C.CString(r.Date)
		}
		return codeOK, nil
	}))
}

//export sg_sign_call
func sg_sign_call(h C.int, req *C.stirgate_sign_request, sig *C.stirgate_signature) C.int {
	if sig != nil {
		*sig = C.stirgate_signature{}
	}
	return C.int(run(int(h), func() (int, error) {
		if req == nil || sig == nil {
			return 0, fail(codeInval, "request and signature are required")
		}
		var in signIn
		if err := readArgs(
			arg{req.orig, "orig", &in.Orig}, arg{req.dest, "dest", &in.Dest},
			arg{req.from, "from", &in.From}, arg{req.pai, "pai", &in.PAI}, arg{req.to, "to", &in.To},
			arg{req.date, "date", &in.Date}, arg{req.attest, "attest", &in.Attest},
			arg{req.origid, "origid", &in.OrigID}, arg{req.call_id, "call_id", &in.CallID},
			arg{req.customer, "customer", &in.Customer}, arg{req.source, "source", &in.Source},
		); err != nil {
			return 0, err
		}
		r, err := sign(int(h), in)
		if err != nil {
			if ae, ok := err.(*apiError); ok && ae.sign != nil {
				sig.error = cstr(ae.sign.Name)
				sig.sip_code = C.int(ae.sign.SIPCode)
				sig.reason = cstr(ae.sign.Reason)
				sig.detail = cstr(ae.msg)
			}
			return 0, err
		}
		sig.identity = cstr(r.Identity)
		sig.date = cstr(r.Date)
		sig.attest = cstr(string(r.Attest))
		sig.origid = cstr(r.OrigID)
		sig.orig = cstr(r.Orig)
		sig.dest = cstr(strings.Join(r.Dest, ","))
		sig.x5u = cstr(r.X5U)
		sig.iat = C.longlong(r.IAT)
		sig.json = cstr(signJSON(r))
		return codeOK, nil
	}))
}

// verifyRequest reads the common arguments of stirgate_verify and
// stirgate_check.
func verifyRequest(ids **C.char, n C.int, from, pai, to, date *C.char) (core.VerifyRequest, error) {
	var req core.VerifyRequest
	switch {
	case n < 0:
		return req, fail(codeInval, "n_identity %d is negative", int(n))
	case n > maxIdentity:
		return req, fail(codeTooLarge, "%d Identity values, limit %d", int(n), maxIdentity)
	case n > 0 && ids == nil:
		return req, fail(codeInval, "identity is NULL with n_identity %d", int(n))
	}
	if n > 0 {
		for i, p := range unsafe.Slice(ids, int(n)) {
			if p == nil {
				return req, fail(codeInval, "identity[%d] is NULL", i)
			}
			v, err := gostr(p, maxInput, "identity value")
			if err != nil {
				return req, err
			}
			req.Identity = append(req.Identity, v)
		}
	}
	err := readArgs(arg{from, "from", &req.From}, arg{pai, "pai", &req.PAI}, arg{to, "to", &req.To}, arg{date, "date", &req.Date})
	return req, err
}

//export sg_verify
func sg_verify(h C.int, ids **C.char, n C.int, from, pai, to, date *C.char, out **C.char) C.int {
	if out != nil {
		*out = nil
	}
	return C.int(run(int(h), func() (int, error) {
		req, err := verifyRequest(ids, n, from, pai, to, date)
		if err != nil {
			return 0, err
		}
		c, err := verify(int(h), req)
		if err != nil {
			return 0, err
		}
		if out != nil {
			*out = C.CString(c.json)
		}
		return outcome(c.res), nil
	}))
}

//export sg_check
func sg_check(h C.int, ids **C.char, n C.int, from, pai, to, date *C.char, res *C.stirgate_result) C.int {
	if res != nil {
		*res = C.stirgate_result{}
	}
	return C.int(run(int(h), func() (int, error) {
		if res == nil {
			return 0, fail(codeInval, "res is NULL")
		}
		req, err := verifyRequest(ids, n, from, pai, to, date)
		if err != nil {
			return 0, err
		}
		c, err := verify(int(h), req)
		if err != nil {
			return 0, err
		}
		return fillResult(c, res), nil
	}))
}

//export sg_check_call
func sg_check_call(h C.int, in *C.stirgate_verify_request, res *C.stirgate_result, callInfo **C.char) C.int {
	if res != nil {
		*res = C.stirgate_result{}
	}
	if callInfo != nil {
		*callInfo = nil
	}
	return C.int(run(int(h), func() (int, error) {
		switch {
		case in == nil:
			return 0, fail(codeInval, "req is NULL")
		case res == nil:
			return 0, fail(codeInval, "res is NULL")
		}
		req, err := verifyRequest(in.identity, in.n_identity, in.from, in.pai, in.to, in.date)
		if err != nil {
			return 0, err
		}
		if err := readArgs(arg{in.target, "target", &req.Target}); err != nil {
			return 0, err
		}
		c, err := verify(int(h), req)
		if err != nil {
			return 0, err
		}
		if callInfo != nil && c.res.Result == stir.Pass && len(c.action.CallInfo) > 0 {
			*callInfo = C.CString(strings.Join(c.action.CallInfo, ", "))
		}
		return fillResult(c, res), nil
	}))
}

// fillResult copies a checked verification into *res and returns its
// outcome code.
func fillResult(c *checked, res *C.stirgate_result) int {
	r := c.res
	res.result = C.int(outcome(r))
	res.sip_code = C.int(r.SIPCode)
	res.iat = C.longlong(r.IAT)
	res.verstat = cstr(string(r.Verstat))
	res.reason = cstr(r.Reason)
	res.error = cstr(r.Error)
	res.detail = cstr(r.Detail)
	// The Result keeps a failed token's claims for the record; a
	// script sees an attestation only once it is verified.
	if r.Result == "pass" {
		res.attest = cstr(string(r.Attest))
		res.origid = cstr(r.OrigID)
	}
	res.orig = cstr(r.Orig)
	res.dest = cstr(strings.Join(r.Dest, ","))
	res.x5u = cstr(r.X5U)
	res.spc = cstr(r.SPC)
	res.json = cstr(c.json)
	a := c.action
	if a.Reject {
		res.reject = 1
		res.reject_code = C.int(a.Code)
		res.reject_reason = cstr(a.Reason)
	}
	res.reason_header = cstr(a.ReasonHeader)
	res.mark = cstr(a.Verstat)
	res.from = cstr(c.from)
	res.pai = cstr(c.pai)
	return outcome(r)
}

//export sg_status
func sg_status(h C.int, out **C.char) C.int {
	if out != nil {
		*out = nil
	}
	return C.int(run(int(h), func() (int, error) {
		if out == nil {
			return 0, fail(codeInval, "json is NULL")
		}
		js, err := status(int(h))
		if err != nil {
			return 0, err
		}
		*out = C.CString(js)
		return 0, nil
	}))
}
