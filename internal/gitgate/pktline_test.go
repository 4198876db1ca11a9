package gitgate

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// pktUpper uses an uppercase-hex length, which git's parser also accepts.
func pktUpper(s string) string { return fmt.Sprintf("%04X%s", len(s)+4, s) }

const (
	oidA = "1111111111111111111111111111111111111111"
	oidB = "2222222222222222222222222222222222222222"
	zero = "0000000000000000000000000000000000000000"
)

func TestParseRefUpdates(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []RefUpdate
		err  string
	}{
		{"one with caps", pkt(oidA+" "+oidB+" refs/heads/main\x00report-status side-band-64k\n") + "0000PACK...",
			[]RefUpdate{{oidA, oidB, "refs/heads/main"}}, ""},
		{"several", pkt(zero+" "+oidB+" refs/heads/a\x00report-status") + pkt(oidA+" "+zero+" refs/heads/b\n") + pkt(oidA+" "+oidB+" refs/tags/v1") + "0000",
			[]RefUpdate{{zero, oidB, "refs/heads/a"}, {oidA, zero, "refs/heads/b"}, {oidA, oidB, "refs/tags/v1"}}, ""},
		{"shallow lines skipped", pkt("shallow "+oidA) + pkt(oidA+" "+oidB+" refs/heads/x\x00") + "0000",
			[]RefUpdate{{oidA, oidB, "refs/heads/x"}}, ""},
		{"uppercase length", pktUpper(oidA+" "+oidB+" refs/heads/ab\x00") + "0000", []RefUpdate{{oidA, oidB, "refs/heads/ab"}}, ""},
		{"empty", "0000", nil, ""},
		{"no flush", pkt(oidA + " " + oidB + " refs/heads/x\x00"), nil, "truncated command list"},
		{"truncated line", "0040" + oidA, nil, "truncated pkt-line"},
		{"bad length", "zzzz", nil, "bad pkt-line length"},
		{"short length", "0003", nil, "bad pkt-line length"},
		{"delim packet", "0001", nil, "bad pkt-line length"},
		{"too long", "fff4" + strings.Repeat("a", 0xfff0), nil, "bad pkt-line length"},
		{"push-cert", pkt("push-cert\x00report-status") + "0000", nil, "signed pushes"},
		{"two fields", pkt(oidA+" refs/heads/x\x00") + "0000", nil, "malformed"},
		{"bad oid", pkt(oidA+" "+strings.Repeat("g", 40)+" refs/heads/x\x00") + "0000", nil, "malformed"},
		{"mixed oid length", pkt(oidA+" "+strings.Repeat("a", 64)+" refs/heads/x\x00") + "0000", nil, "malformed"},
		{"NUL later", pkt(oidA+" "+oidB+" refs/heads/x\x00") + pkt(oidA+" "+oidB+" refs/heads/y\x00caps") + "0000", nil, "NUL"},
		{"extra space", pkt(oidA+" "+oidB+" refs/heads/x y\x00") + "0000", nil, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRefUpdates(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseRefUpdatesLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(pkt(zero + " " + oidA + " refs/heads/b0\x00caps"))
	for i := 1; i <= maxRefUpdates; i++ {
		b.WriteString(pkt(fmt.Sprintf("%s %s refs/heads/b%d", zero, oidA, i)))
	}
	b.WriteString("0000")
	if _, err := ParseRefUpdates(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("error %v, want the command limit", err)
	}
}

func TestPeekRefUpdatesRestoresBody(t *testing.T) {
	body := pkt(oidA+" "+oidB+" refs/heads/main\x00report-status") + "0000" + "PACK" + strings.Repeat("x", 10000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, body)
	zw.Close()
	for _, tc := range []struct {
		name, encoding string
		raw            []byte
	}{
		{"plain", "", []byte(body)},
		{"gzip", "gzip", gz.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/app.git/git-receive-pack", bytes.NewReader(tc.raw))
			if tc.encoding != "" {
				r.Header.Set("Content-Encoding", tc.encoding)
			}
			got, err := peekRefUpdates(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Ref != "refs/heads/main" {
				t.Fatalf("updates %v", got)
			}
			rest, _ := io.ReadAll(r.Body)
			if !bytes.Equal(rest, tc.raw) {
				t.Fatalf("body not restored: %d bytes, want %d", len(rest), len(tc.raw))
			}
		})
	}
	r := httptest.NewRequest("POST", "/app.git/git-receive-pack", strings.NewReader(body))
	r.Header.Set("Content-Encoding", "br")
	if _, err := peekRefUpdates(r); err == nil {
		t.Fatal("unknown Content-Encoding accepted")
	}
}

func TestParseHookInput(t *testing.T) {
	got, err := parseHookInput(strings.NewReader(oidA + " " + oidB + " refs/heads/a\n" + zero + " " + oidA + " refs/tags/t\n"))
	if err != nil || len(got) != 2 || got[1] != (RefUpdate{zero, oidA, "refs/tags/t"}) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := parseHookInput(strings.NewReader("garbage\n")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzParseRefUpdates(f *testing.F) {
	f.Add([]byte(pkt(oidA+" "+oidB+" refs/heads/main\x00report-status") + "0000PACK"))
	f.Add([]byte(pkt("shallow "+oidA) + pkt(zero+" "+oidB+" refs/tags/v\x00") + pkt(oidA+" "+zero+" refs/heads/x") + "0000"))
	f.Add([]byte("0000"))
	f.Add([]byte("fff0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseRefUpdates(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(got) > maxRefUpdates {
			t.Fatalf("%d updates over the limit", len(got))
		}
		for _, u := range got {
			if !validOID(u.Old) || !validOID(u.New) || u.Ref == "" || strings.ContainsAny(u.Ref, " \x00") {
				t.Fatalf("parsed an invalid update %+v", u)
			}
		}
	})
}
