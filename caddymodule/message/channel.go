package message

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxChannelLen is the longest channel name accepted, in bytes (SPEC §2).
const MaxChannelLen = 128

// ValidateChannel reports which naming rule name breaks, if any: 1–128 bytes
// of [A-Za-z0-9_.:@/-], and no empty, "." or ".." segment between slashes,
// so a channel name can never be read as a path that climbs out of a prefix.
func ValidateChannel(name string) error {
	if name == "" {
		return errors.New("channel name is empty")
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("channel name is %d bytes long; at most %d are allowed", len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return fmt.Errorf("channel name has the byte %q at offset %d; only A-Z a-z 0-9 _ . : @ / - are allowed", name[i], i)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return errors.New("channel name has an empty segment between slashes")
		case ".", "..":
			return fmt.Errorf("channel name has a %q segment", seg)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '@' || c == '/' || c == '-'
}

// ParseChannelList splits a comma list of channel names, as found in
// `{prefix}/sub/{channels}`, validating each and dropping repeats. max bounds
// how many distinct channels one subscription may hold.
func ParseChannelList(list string, max int) ([]string, error) {
	if list == "" {
		return nil, errors.New("no channel given")
	}
	var channels []string
	for name := range strings.SplitSeq(list, ",") {
		if err := ValidateChannel(name); err != nil {
			return nil, err
		}
		if slices.Contains(channels, name) {
			continue
		}
		if len(channels) == max {
			return nil, fmt.Errorf("more than %d channels in one subscription", max)
		}
		// A copy: a held subscription keeps its names as long as it
		// lasts, and a piece of the request's path would keep the whole
		// request line with it.
		channels = append(channels, strings.Clone(name))
	}
	return channels, nil
}

// maxEventLen bounds an event name: it is written on its own SSE line.
const maxEventLen = 64

// ValidateEvent checks a publisher's event name. Names are restricted to the
// channel alphabet minus '/', so they can never carry a line break into an
// SSE `event:` field (WHATWG HTML §9.2.6), and the `comet.` prefix is kept
// for the hub's own notices.
func ValidateEvent(event string) error {
	if event == "" {
		return nil
	}
	if len(event) > maxEventLen {
		return fmt.Errorf("event name is %d bytes long; at most %d are allowed", len(event), maxEventLen)
	}
	for i := 0; i < len(event); i++ {
		if c := event[i]; !channelByte(c) || c == '/' {
			return fmt.Errorf("event name has the byte %q at offset %d; only A-Z a-z 0-9 _ . : @ - are allowed", c, i)
		}
	}
	if strings.HasPrefix(event, NoticePrefix) {
		return fmt.Errorf("event names starting with %q are reserved for the hub's notices", NoticePrefix)
	}
	return nil
}
