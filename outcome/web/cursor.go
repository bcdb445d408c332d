package web

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// The calls list pages by keyset: its Next link names the last row shown
// (after=), and the store starts after it on an index, so page 10,000 costs
// what page 1 does. n= carries how many rows came before, for the heading.

const cursorSep = "\x1f"

func encodeCursor(c *outcome.Cursor) string {
	raw := strconv.FormatInt(c.Time.UnixMilli(), 10) + cursorSep + c.System + cursorSep + c.UniqueID + cursorSep + c.Kind
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(v string) (*outcome.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	parts := strings.Split(string(b), cursorSep)
	if err != nil || len(parts) != 4 {
		return nil, fmt.Errorf("%w: after %q", errBadParam, v)
	}
	msec, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: after %q", errBadParam, v)
	}
	c := &outcome.Cursor{System: parts[1], UniqueID: parts[2], Kind: parts[3]}
	if msec != 0 {
		c.Time = timeMS(msec)
	}
	return c, nil
}

func timeMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
