package publish

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"

	"github.com/cometbox/cometbox/caddymodule/message"
)

// formFields is what an unknown-key error says a form may hold.
const formFields = "a form holds channel (one or more), event, data and type"

// parseForm reads `channel=a&channel=b&event=e&data=...&type=...`: one
// message, sent to every channel named, so one draft per channel. The type
// defaults to text/plain, as for a single publish without a Content-Type.
func parseForm(b *builder, body []byte) error {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return fmt.Errorf("invalid form: %w", err)
	}
	// Keys are checked in sorted order so that a form with several faults
	// always gets the same error.
	for _, key := range slices.Sorted(maps.Keys(values)) {
		switch key {
		case "channel":
		case "event", "data", "type":
			// A second value would have to be dropped or sent as
			// another message; either would surprise someone.
			if n := len(values[key]); n > 1 {
				return fmt.Errorf("%s given %d times; a form sends one message, to as many channels as it names", key, n)
			}
		default:
			return fmt.Errorf("unknown key %q; %s", key, formFields)
		}
	}
	channels, ok := values["channel"]
	if !ok {
		return errors.New("form has no channel")
	}
	data, ok := values["data"]
	if !ok {
		return errors.New("form has no data")
	}
	event, typ := values.Get("event"), values.Get("type")
	payload := []byte(data[0])
	seen := channelSet{}
	for i, channel := range channels {
		if !seen.addNew(channel) {
			continue
		}
		d := message.Draft{Channel: channel, Event: event, Type: typ, Data: payload}
		if err := b.add(i, d); err != nil {
			return err
		}
	}
	return nil
}
