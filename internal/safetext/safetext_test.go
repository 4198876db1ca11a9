package safetext

import (
	"encoding/json"
	"testing"
)

func TestHidden(t *testing.T) {
	hidden := map[string]rune{
		"nul": 0, "esc": 0x1b, "del": 0x7f, "c1-csi": 0x9b, "nbsp": 0xa0, "soft-hyphen": 0xad,
		"hangul-filler": 0x115f, "mongolian-vs": 0x180b, "zwsp": 0x200b, "zwnj": 0x200c, "zwj": 0x200d,
		"lrm": 0x200e, "rlo": 0x202e, "lri": 0x2066, "pdi": 0x2069, "line-sep": 0x2028, "word-joiner": 0x2060,
		"invisible-times": 0x2062, "ideographic-space": 0x3000, "hangul-filler-2": 0x3164, "vs16": 0xfe0f,
		"bom": 0xfeff, "halfwidth-filler": 0xffa0, "braille-blank": 0x2800, "tag-a": 0xe0041,
		"tag-cancel": 0xe007f, "vs-supplement": 0xe0100, "private-use": 0xe000, "unassigned": 0x0378,
	}
	for name, r := range hidden {
		if !Hidden(r) {
			t.Errorf("%s (U+%04X) is not Hidden", name, r)
		}
	}
	for _, r := range "aZ09 -_./:@é日本ä€ß" {
		if Hidden(r) {
			t.Errorf("%q (U+%04X) is Hidden", r, r)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                  "plain",
		"evil\u202etxt.exe":      `evil\u202etxt.exe`,
		"a\u009b31mred":          `a\u009b31mred`,
		"\x1b[2Jclear":           `\u001b[2Jclear`,
		"zw\u200bsp":             `zw\u200bsp`,
		"tag\U000E0041":          `tag\U000e0041`,
		"bad\xffbyte":            `bad\xffbyte`,
		"two\nlines":             `two\u000alines`,
		"caf\u00e9 \u65e5\u672c": "caf\u00e9 \u65e5\u672c",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Lines("RUN a\u200b\nRUN b\n"); got != "RUN a\\u200b\nRUN b\n" {
		t.Errorf("Lines: %q", got)
	}
}

// JSON keeps a line valid and equal in value, and leaves nothing a
// terminal acts on.
func TestJSON(t *testing.T) {
	in := map[string]string{"host": "evil\u202etxt\u009b31m", "path": "/\u200b\U000E0041\u2028", "ok": "café"}
	b, _ := json.Marshal(in)
	// encoding/json writes U+202E, U+009B and U+200B raw.
	if !HasHidden(string(b)) {
		t.Fatalf("test premise: encoding/json escaped them itself: %s", b)
	}
	out := JSON(append(b, '\n'))
	if HasHidden(string(out[:len(out)-1])) || out[len(out)-1] != '\n' {
		t.Fatalf("JSON left a hidden character or lost the newline: %q", out)
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("JSON broke the line: %v: %s", err, out)
	}
	for k, v := range in {
		if back[k] != v {
			t.Errorf("%s: %q came back as %q", k, v, back[k])
		}
	}
	// Raw bytes a tampered file might hold are escaped too.
	if got := string(JSON([]byte("{\"a\":\"\x1b[31m\xff\"}\n"))); got != "{\"a\":\"\\u001b[31m\\ufffd\"}\n" {
		t.Errorf("raw bytes: %q", got)
	}
}
