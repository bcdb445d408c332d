// Package verstat drives the native module's verstat.c from Go, for its
// fuzz test: _test.go files cannot use cgo themselves.
package verstat

/*
#include <stdlib.h>
#include "../verstat.c"
*/
import "C"

import "unsafe"

// Strip is strip_verstat of kamailio/module/verstat.c.
func Strip(v string) (string, bool) {
	in := C.CString(v)
	defer C.free(unsafe.Pointer(in))
	out := (*C.char)(C.malloc(C.size_t(len(v) + 1)))
	defer C.free(unsafe.Pointer(out))
	removed := C.strip_verstat(in, out)
	return C.GoString(out), removed == 1
}
