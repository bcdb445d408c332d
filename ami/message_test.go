package ami

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Message
		err  error
	}{
		{"crlf", "Event: Hangup\r\nUniqueid: 1.2\r\nCause: 16\r\n\r\n",
			[]Message{{{"Event", "Hangup"}, {"Uniqueid", "1.2"}, {"Cause", "16"}}}, nil},
		{"bare lf and spacing", "Event:UserEvent\nKey \t:  v: w \n\n",
			[]Message{{{"Event", "UserEvent"}, {"Key", "v: w "}}}, nil},
		{"leading blanks, two messages", "\r\n\r\nA: 1\r\n\r\nB: 2\r\n\r\n",
			[]Message{{{"A", "1"}}, {{"B", "2"}}}, nil},
		{"repeated keys in order", "Event: X\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n",
			[]Message{{{"Event", "X"}, {"ChanVariable", "A=1"}, {"ChanVariable", "B=2"}}}, nil},
		{"command output line", "Response: Follows\r\nsome output\r\n--END COMMAND--\r\n\r\n",
			[]Message{{{"Response", "Follows"}, {"", "some output"}, {"", "--END COMMAND--"}}}, nil},
		{"truncated", "Event: X\r\nA: 1", nil, errTruncated},
		{"line too long", "A: " + strings.Repeat("x", MaxLineBytes) + "\r\n\r\n", nil, ErrLineTooLong},
		{"too many headers", strings.Repeat("A: 1\r\n", MaxHeaders+1) + "\r\n", nil, ErrTooManyHdrs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			var got []Message
			var err error
			for {
				var m Message
				if m, err = ReadMessage(br); err != nil {
					break
				}
				got = append(got, m)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestReadBanner(t *testing.T) {
	for in, want := range map[string]string{
		"Asterisk Call Manager/9.0.0\r\n": "9.0.0",
		"Asterisk Call Manager/2.10.6\n":  "2.10.6",
		"HTTP/1.1 400 Bad Request\r\n":    "",
	} {
		v, err := ReadBanner(bufio.NewReader(strings.NewReader(in)))
		if v != want || (want == "") != errors.Is(err, ErrBanner) {
			t.Errorf("%q: %q, %v", in, v, err)
		}
	}
}

// FuzzReadMessage: no input panics or grows without bound, and what is
// parsed survives serialisation: parse(bytes(m)) == m for every m parsed.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"))
	f.Add([]byte("Response: Success\r\nActionID: 1\r\nPing: Pong\r\nTimestamp: 1700000000.000000\r\n\r\n"))
	f.Add([]byte("Event: UserEvent\r\nUserEvent: StirShaken\r\nChanVariable: STIR_RESULT=pass\r\nChanVariable: STIR_X5U=https://a/b\r\n\r\n"))
	f.Add([]byte("Response: Follows\r\nPrivilege: Command\r\nline without colon\r\n--END COMMAND--\r\n\r\n"))
	f.Add([]byte("\n\n:\n \n\t:\t\r\r\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(strings.NewReader(string(b)))
		for range 100 {
			m, err := ReadMessage(br)
			if err != nil {
				return
			}
			if len(m) == 0 || len(m) > MaxHeaders {
				t.Fatalf("message of %d headers", len(m))
			}
			// Encoding what was read and reading it again gives back the
			// message as first read, header by header.
			again, err := ReadMessage(bufio.NewReader(strings.NewReader(string(m.Bytes()))))
			if err != nil {
				t.Fatalf("reparse %q: %v", m.Bytes(), err)
			}
			if !reflect.DeepEqual(again, m) {
				t.Fatalf("round trip changed the message:\n read %q\nagain %q", m, again)
			}
		}
	})
}
