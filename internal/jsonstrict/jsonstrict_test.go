package jsonstrict

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type conf struct {
		Name  string   `json:"name"`
		Hosts []string `json:"hosts"`
	}
	cases := []struct {
		in       string
		want     string // Name, when accepted
		errHas   string
		trailing bool
	}{
		{in: `{"name":"a","hosts":["x"]}`, want: "a"},
		{in: " \n{\"name\":\"b\"}\n\t ", want: "b"},
		{in: `{"name":"a","hostz":["x"]}`, errHas: `unknown field "hostz"`},
		{in: `{"name":"a"}{"name":"b"}`, trailing: true},
		{in: `{"name":"a"}}`, trailing: true},
		{in: `{"name":"a"}]`, trailing: true},
		{in: `{"name":"a"} x`, trailing: true},
		{in: `{"name":"a"} 1`, trailing: true},
		{in: `{"name":"a"`, errHas: "unexpected EOF"},
		{in: ``, errHas: "EOF"},
		{in: `{"name":1}`, errHas: "cannot unmarshal"},
	}
	for _, tc := range cases {
		var c conf
		err := Decode([]byte(tc.in), &c)
		switch {
		case tc.trailing:
			if !errors.Is(err, ErrTrailing) {
				t.Errorf("%q: want ErrTrailing, got %v", tc.in, err)
			}
		case tc.errHas != "":
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: want an error with %q, got %v", tc.in, tc.errHas, err)
			}
		default:
			if err != nil || c.Name != tc.want {
				t.Errorf("%q: got %+v %v, want name %q", tc.in, c, err, tc.want)
			}
		}
	}
}
