// Package enum names the values of small integer enumerations from a
// table: a String method is then one line over a table keyed by the
// constants, instead of a switch with a case per value.
package enum

import "strconv"

// Integer is the underlying type of an enumeration.
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// Name is names[v], or kind(v) (as "role(7)") for a value the table does
// not name (out of it, or an empty entry).
func Name[T Integer](v T, names []string, kind string) string {
	if uint64(v) < uint64(len(names)) && names[v] != "" {
		return names[v]
	}
	if v < 0 {
		return kind + "(" + strconv.FormatInt(int64(v), 10) + ")"
	}
	return kind + "(" + strconv.FormatUint(uint64(v), 10) + ")"
}
