package spool

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample() Record {
	return Record{Time: time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC), System: "kam1", UniqueID: "k1-a-1",
		Kind: "verify", Direction: "inbound", Orig: "12155550121", Dest: "12155550131,12155550132", Result: "fail",
		Verstat: "TN-Validation-Failed", Attest: "A", OrigID: "9a4e6a1c-7a34-4d55-8d3c-0e5d2e5f1a00", SIPCode: 438,
		ErrorName: "orig_mismatch", Reason: `orig.tn "1" \ request <2>` + "\x01\n\u2028é", X5U: "https://cert.example/a.pem",
		SPC: "1234", Source: "kamailio", Peer: "192.0.2.1", Div: "12155550131,12155550141", RCDNam: "ACME \"Corp\"", RCDCrn: "Delivery",
		Tenant: "blue", Customer: "acme", Rule: "customer_number"}
}

// TestAppendRecordIsJSON: the hand-written encoder and encoding/json agree.
func TestAppendRecordIsJSON(t *testing.T) {
	r := sample()
	var got Record
	b := appendRecord(nil, &r)
	if !strings.HasSuffix(string(b), "}\n") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not one line: %q", b)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("got  %+v\nwant %+v", got, r)
	}
	// Every field of Record is written.
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if n := reflect.TypeFor[Record]().NumField(); len(m) != n {
		t.Errorf("%d fields encoded, Record has %d", len(m), n)
	}
}

func FuzzAppendRecord(f *testing.F) {
	f.Add("orig", "reason \"quoted\"", 438)
	f.Add("\xff\xfe", "\x00\x1f\u2029", -1)
	f.Fuzz(func(t *testing.T, orig, reason string, code int) {
		r := sample()
		r.Orig, r.Reason, r.SIPCode = orig, reason, code
		b := appendRecord(nil, &r)
		if strings.IndexByte(string(b), 0) >= 0 || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("NUL or extra newline in %q", b)
		}
		var got Record
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%v: %q", err, b)
		}
		// encoding/json's view of the same strings (invalid UTF-8 → U+FFFD).
		var want Record
		jb, _ := json.Marshal(r)
		_ = json.Unmarshal(jb, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	})
}

// TestSegments: a burst larger than a segment rolls over to the spare
// without losing a record; Close leaves only sealed files whose lines are
// every record, once.
func TestSegments(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(Options{Dir: dir, SegmentSize: 64 << 10, SealEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const n, workers = 400, 4
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				r := sample()
				r.UniqueID = string(rune('a'+g)) + "-" + time.Duration(i).String()
				w.Record(r)
				if i%100 == 0 {
					_ = w.Seal()
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	files, _ := os.ReadDir(dir)
	seen := map[string]bool{}
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), SuffixSealed) {
			t.Errorf("left after Close: %s", f.Name())
			continue
		}
		data, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			var r Record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v: %q", f.Name(), err, line)
			}
			if seen[r.UniqueID] {
				t.Errorf("%s twice", r.UniqueID)
			}
			seen[r.UniqueID] = true
		}
	}
	if st.Failed != 0 || st.Written != n*workers || len(seen) != n*workers {
		t.Errorf("written %d failed %d read back %d, want %d", st.Written, st.Failed, len(seen), n*workers)
	}
}

// BenchmarkRecord is the cost a SIP worker pays per call.
func BenchmarkRecord(b *testing.B) {
	w, err := Open(Options{Dir: b.TempDir(), SegmentSize: 4 << 20, SealEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	r := sample()
	for b.Loop() {
		w.Record(r)
	}
}
