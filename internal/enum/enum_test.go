package enum

import (
	"fmt"
	"testing"
)

type color uint8

const (
	red color = iota + 1
	green
)

var colorNames = [...]string{red: "red", green: "green"}

func (c color) String() string { return Name(c, colorNames[:], "color") }

type level int

var levelNames = []string{"low", "high"}

func (l level) String() string { return Name(l, levelNames, "level") }

func TestName(t *testing.T) {
	for _, tc := range []struct {
		v    fmt.Stringer
		want string
	}{
		{red, "red"},
		{green, "green"},
		{color(0), "color(0)"}, // an empty entry
		{color(3), "color(3)"},
		{color(255), "color(255)"},
		{level(0), "low"},
		{level(1), "high"},
		{level(2), "level(2)"},
		{level(-1), "level(-1)"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.v, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = green.String() }); n != 0 {
		t.Errorf("a named value allocates %v times", n)
	}
}
