package message

import "strings"

// Pattern is a channel name pattern, as used by per-pattern retention and
// (later) by `public` and token claims: `*` matches any run of characters,
// `/` and `.` included; everything else matches itself. `user.*` matches
// `user.42` and `user.42/inbox`; `*` matches every channel.
type Pattern string

// Match reports whether channel matches p.
func (p Pattern) Match(channel string) bool {
	return globMatch(string(p), channel)
}

func globMatch(pattern, name string) bool {
	// Iterative matching with one backtrack point: linear in practice and
	// never exponential, whatever a hostile pattern looks like.
	var starPattern, starName = -1, 0
	p, n := 0, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			starPattern, starName = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case starPattern >= 0:
			starName++
			p, n = starPattern+1, starName
		default:
			return false
		}
	}
	return strings.Trim(pattern[p:], "*") == ""
}
