package publish

import (
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

func TestJSONAcceptsWrapperAndBareArray(t *testing.T) {
	want := []message.Draft{
		{Channel: "a", Event: "e", Type: "text/plain", Data: []byte("one")},
		{Channel: "b/c", Type: "application/json", Data: []byte(`{"n":2}`)},
	}
	elements := `{"channel":"a","event":"e","data":"one"}, {"channel":"b/c","data":{"n":2}}`
	tests := []struct {
		name, body string
	}{
		{"wrapper", `{"messages":[` + elements + `]}`},
		{"bare array", `[` + elements + `]`},
		{"white space around", "\n\t [" + elements + "] \r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			draftsEqual(t, mustParse(t, ctJSON, tt.body), want)
		})
	}
}

func TestJSONStringDataIsText(t *testing.T) {
	tests := []struct {
		name, element string
		want          message.Draft
	}{
		{"plain", `"data":"hello\nworld \u00e9"`, message.Draft{Type: "text/plain", Data: []byte("hello\nworld é")}},
		{"empty", `"data":""`, message.Draft{Type: "text/plain", Data: []byte{}}},
		{"given type", `"type":"text/html","data":"<b>hi</b>"`, message.Draft{Type: "text/html", Data: []byte("<b>hi</b>")}},
		{"xml type", `"type":"application/xml","data":"<a/>"`, message.Draft{Type: "application/xml", Data: []byte("<a/>")}},
		{"json type holds JSON text", `"type":"application/json","data":"{\"a\": [1, 2]}"`, message.Draft{Type: "application/json", Data: []byte(`{"a":[1,2]}`)}},
		{"json suffix type", `"type":"application/geo+json","data":" 3 "`, message.Draft{Type: "application/geo+json", Data: []byte("3")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Channel = "a"
			draftsEqual(t, mustParse(t, ctJSON, `[{"channel":"a",`+tt.element+`}]`), []message.Draft{tt.want})
		})
	}
}

func TestJSONValueDataIsJSON(t *testing.T) {
	tests := []struct {
		name, element string
		want          message.Draft
	}{
		{"object", `"data":{"b":1,"a":2}`, message.Draft{Type: "application/json", Data: []byte(`{"b":1,"a":2}`)}},
		{"array", `"data":[1,"x",null]`, message.Draft{Type: "application/json", Data: []byte(`[1,"x",null]`)}},
		{"number keeps precision", `"data":12345678901234567890.000000000001`, message.Draft{Type: "application/json", Data: []byte(`12345678901234567890.000000000001`)}},
		{"boolean", `"data":true`, message.Draft{Type: "application/json", Data: []byte(`true`)}},
		{"null", `"data":null`, message.Draft{Type: "application/json", Data: []byte(`null`)}},
		{"json type kept", `"type":"application/vnd.x+json","data":{"a":1}`, message.Draft{Type: "application/vnd.x+json", Data: []byte(`{"a":1}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Channel = "a"
			draftsEqual(t, mustParse(t, ctJSON, `[{"channel":"a",`+tt.element+`}]`), []message.Draft{tt.want})
		})
	}
}

func TestJSONCompactsPrettyData(t *testing.T) {
	body := `{
  "messages": [
    {
      "channel": "a",
      "data": {
        "list": [
          1,
          2
        ],
        "text": "line one\nline two"
      }
    }
  ]
}`
	got := mustParse(t, ctJSON, body)
	want := `{"list":[1,2],"text":"line one\nline two"}`
	if string(got[0].Data) != want {
		t.Fatalf("data = %s, want %s", got[0].Data, want)
	}
	if strings.ContainsAny(string(got[0].Data), "\n\r") {
		t.Fatalf("compacted data holds a raw line break: %q", got[0].Data)
	}
}

func TestJSONRejectsMalformedBatch(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown field", `[{"channel":"a","data":1,"priority":2}]`, `message 0: unknown field "priority"; a message has only channel, event, type and data`},
		{"unknown wrapper field", `{"messages":[],"extra":1}`, `unknown field "extra"; the body holds only "messages"`},
		{"wrapper key case", `{"Messages":[{"channel":"a","data":1}]}`, `unknown field "Messages"`},
		{"messages twice", `{"messages":[{"channel":"a","data":1}],"messages":[]}`, `"messages" given twice`},
		{"messages not an array", `{"messages":{"channel":"a","data":1}}`, `"messages" must be an array`},
		{"messages null", `{"messages":null}`, `"messages" must be an array`},
		{"no messages", `{}`, `body has no "messages" array`},
		{"missing data", `[{"channel":"a"}]`, "message 0: data is missing"},
		{"missing data later", `[{"channel":"a","data":1},{"channel":"b","event":"e"}]`, "message 1: data is missing"},
		{"trailing garbage", `[{"channel":"a","data":1}] x`, "trailing data after the JSON value"},
		{"second value", `[{"channel":"a","data":1}][]`, "trailing data after the JSON value"},
		{"second wrapper", `{"messages":[{"channel":"a","data":1}]}{}`, "trailing data after the JSON value"},
		{"truncated", `[{"channel":"a","data":1}`, "invalid JSON: unexpected EOF"},
		{"truncated element", `[{"channel":"a","data":`, "message 0: invalid JSON"},
		{"syntax error", `[{"channel":"a" "data":1}]`, "message 0: invalid JSON"},
		{"not JSON", `channel=a&data=x`, "invalid JSON"},
		{"top-level string", `"hello"`, `body must be {"messages":[...]} or an array of messages`},
		{"top-level null", `null`, `body must be {"messages":[...]}`},
		{"element not an object", `[{"channel":"a","data":1},"b"]`, "message 1: must be an object, not a JSON string"},
		{"channel not a string", `[{"channel":5,"data":1}]`, "message 0: channel must be a string, not a JSON number"},
		{"event not a string", `[{"channel":"a","event":["e"],"data":1}]`, "message 0: event must be a string, not a JSON array"},
		{"value data with text type", `[{"channel":"a","type":"text/plain","data":{"a":1}}]`, "message 0: data is a JSON object but type text/plain is not a JSON type; send the data as a string"},
		{"json type with non-JSON string", `[{"channel":"a","type":"application/json","data":"{a:1}"}]`, "message 0: data is not valid JSON although its type is application/json"},
		{"json type with empty string", `[{"channel":"a","type":"application/json","data":""}]`, "message 0: data is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctJSON, tt.body, tt.want)
		})
	}
}

// TestJSONDeepNestingFailsCleanly feeds nesting far past encoding/json's
// depth limit, at every place a value can nest, and wants an error quickly.
func TestJSONDeepNestingFailsCleanly(t *testing.T) {
	const depth = 200_000
	deep := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	tests := []struct {
		name, body string
	}{
		{"as the batch", deep},
		{"as an element", "[" + deep + "]"},
		{"as data", `[{"channel":"a","data":` + deep + `}]`},
		{"as data in a wrapper", `{"messages":[{"channel":"a","data":` + deep + `}]}`},
		{"as an unclosed prefix", strings.Repeat(`{"a":`, depth)},
		{"as JSON text in a string", `[{"channel":"a","type":"application/json","data":"` + deep + `"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if _, _, err := ParseBatch(ctJSON, []byte(tt.body)); err == nil {
				t.Fatal("deeply nested JSON was accepted")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("rejecting deeply nested JSON took %v", d)
			}
		})
	}
}

func TestJSONAcceptsModerateNesting(t *testing.T) {
	const depth = 500
	deep := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	got := mustParse(t, ctJSON, `[{"channel":"a","data":`+deep+`}]`)
	if string(got[0].Data) != deep {
		t.Fatalf("nested data changed: %.40s", got[0].Data)
	}
}
