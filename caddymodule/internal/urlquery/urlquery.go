// Package urlquery reads single parameters from a raw query string without
// building url.Values: a subscribe request asks for a handful of
// parameters, and a map of slices per request is most of what parsing
// would cost.
package urlquery

import "net/url"

// Get returns the first value of key in a raw query, unescaped, as
// url.ParseQuery followed by Values.Get would: pairs are split on '&', a
// pair holding ';' or a bad escape is skipped, and a missing key is "".
func Get(rawQuery, key string) string {
	for rawQuery != "" {
		var p pair
		p, rawQuery = nextPair(rawQuery)
		if p.empty || p.semicolon {
			continue
		}
		name := p.name
		if p.escapedName {
			unescaped, err := url.QueryUnescape(name)
			if err != nil {
				continue
			}
			name = unescaped
		}
		if name != key {
			continue
		}
		if !p.escapedValue {
			return p.value
		}
		if unescaped, err := url.QueryUnescape(p.value); err == nil {
			return unescaped
		}
	}
	return ""
}

// pair is one name=value of a raw query, with what needs a second look.
type pair struct {
	name, value               string
	escapedName, escapedValue bool // holds '%' or '+'
	empty, semicolon          bool
}

// nextPair splits the first pair off a raw query in one pass over its bytes.
func nextPair(q string) (pair, string) {
	var p pair
	eq := -1
	end := len(q)
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case '&':
			end = i
		case '=':
			if eq < 0 {
				eq = i
			}
			continue
		case ';':
			p.semicolon = true
			continue
		case '%', '+':
			if eq < 0 {
				p.escapedName = true
			} else {
				p.escapedValue = true
			}
			continue
		default:
			continue
		}
		break
	}
	p.empty = end == 0
	if eq < 0 {
		p.name = q[:end]
	} else {
		p.name, p.value = q[:eq], q[eq+1:end]
	}
	rest := ""
	if end < len(q) {
		rest = q[end+1:]
	}
	return p, rest
}
