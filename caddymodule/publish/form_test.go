package publish

import (
	"testing"

	"github.com/cometbox/cometbox/caddymodule/message"
)

func TestFormGivesOneDraftPerChannel(t *testing.T) {
	tests := []struct {
		name, body string
		want       []message.Draft
	}{
		{"one channel", "channel=a&data=hello", []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte("hello")},
		}},
		{"several channels", "channel=a&event=e&channel=b%2Fc&data=hi&channel=d", []message.Draft{
			{Channel: "a", Event: "e", Type: "text/plain", Data: []byte("hi")},
			{Channel: "b/c", Event: "e", Type: "text/plain", Data: []byte("hi")},
			{Channel: "d", Event: "e", Type: "text/plain", Data: []byte("hi")},
		}},
		{"repeat dropped", "channel=a&channel=b&channel=a&data=x", []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte("x")},
			{Channel: "b", Type: "text/plain", Data: []byte("x")},
		}},
		{"escapes decoded", "channel=a&data=a+b%26c%3D%0A%E2%82%AC", []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte("a b&c=\n€")},
		}},
		{"empty data", "channel=a&data=", []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte{}},
		}},
		{"given type", "channel=a&type=text/html&data=%3Cb%3E", []message.Draft{
			{Channel: "a", Type: "text/html", Data: []byte("<b>")},
		}},
		{"json type compacted", "channel=a&channel=b&type=application/json&data=%7B+%22a%22%3A+%5B1%2C+2%5D+%7D", []message.Draft{
			{Channel: "a", Type: "application/json", Data: []byte(`{"a":[1,2]}`)},
			{Channel: "b", Type: "application/json", Data: []byte(`{"a":[1,2]}`)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			draftsEqual(t, mustParse(t, ctForm, tt.body), tt.want)
		})
	}
}

func TestFormRejectsMalformedForm(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", "channel=a&data=x&priority=1", `unknown key "priority"; a form holds channel (one or more), event, data and type`},
		{"key case", "Channel=a&data=x", `unknown key "Channel"`},
		{"missing channel", "data=x", "form has no channel"},
		{"missing data", "channel=a&event=e", "form has no data"},
		{"event twice", "channel=a&event=e&event=f&data=x", "event given 2 times"},
		{"data twice", "channel=a&data=x&data=y", "data given 2 times"},
		{"type twice", "channel=a&type=text/plain&type=text/plain&data=x", "type given 2 times"},
		{"semicolon separator", "channel=a;data=x", "invalid form: invalid semicolon separator"},
		{"bad escape", "channel=a&data=%zz", "invalid form"},
		{"empty channel", "channel=&data=x", "message 0: channel name is empty"},
		{"comma list is not split", "channel=a,b&data=x", "message 0: channel name has the byte ','"},
		{"bad event", "channel=a&event=comet.reset&data=x", "message 0: event names starting with"},
		{"json type with bad json", "channel=a&type=application/json&data=%7Ba", "message 0: data is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctForm, tt.body, tt.want)
		})
	}
}
