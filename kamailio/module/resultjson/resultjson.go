// Package resultjson drives the native module's resultjson.c from Go, for
// its tests and fuzz targets: _test.go files cannot use cgo themselves.
package resultjson

/*
#include <stdlib.h>
#include "../resultjson.c"
*/
import "C"

import "unsafe"

// Div is result_div of kamailio/module/resultjson.c with an output buffer
// of size bytes.
func Div(js string, size int) (string, int) {
	in := C.CString(js)
	defer C.free(unsafe.Pointer(in))
	out := (*C.char)(C.malloc(C.size_t(size)))
	defer C.free(unsafe.Pointer(out))
	n := C.result_div(in, out, C.size_t(size))
	return C.GoString(out), int(n)
}

// RCD is result_rcd of kamailio/module/resultjson.c with an output buffer
// of size bytes.
func RCD(js, key string, size int) (string, int) {
	in := C.CString(js)
	defer C.free(unsafe.Pointer(in))
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	out := (*C.char)(C.malloc(C.size_t(size)))
	defer C.free(unsafe.Pointer(out))
	n := C.result_rcd(in, k, out, C.size_t(size))
	return C.GoString(out), int(n)
}
