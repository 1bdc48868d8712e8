package publish

import (
	"strings"
	"testing"
	"time"

	"github.com/cometbox/cometbox/caddymodule/message"
)

func TestXMLSingleMessage(t *testing.T) {
	tests := []struct {
		name, body string
		want       message.Draft
	}{
		{"text", `<message channel="news" event="headline">Hello, world</message>`,
			message.Draft{Channel: "news", Event: "headline", Type: "text/plain", Data: []byte("Hello, world")}},
		{"no event", `<message channel='a'>x</message>`,
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("x")}},
		{"empty element", `<message channel="a"/>`,
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte{}}},
		{"white space kept", "<message channel=\"a\">  two\n  lines </message>",
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("  two\n  lines ")}},
		{"line ends normalized", "<message channel=\"a\">a\r\nb\rc</message>",
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("a\nb\nc")}},
		{"comment dropped from text", `<message channel="a">be<!-- not this -->fore</message>`,
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("before")}},
		{"declaration", `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<message channel="a">x</message>` + "\n",
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("x")}},
		{"byte order mark", "\ufeff<?xml version=\"1.0\"?><message channel=\"a\">x</message>",
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("x")}},
		{"comments around root", `<!-- a --><message channel="a">x</message><!-- b -->`,
			message.Draft{Channel: "a", Type: "text/plain", Data: []byte("x")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			draftsEqual(t, mustParse(t, ctXML, tt.body), []message.Draft{tt.want})
		})
	}
}

func TestXMLBatchKeepsOrder(t *testing.T) {
	body := `<?xml version="1.0"?>
<messages>
  <!-- first -->
  <message channel="a" event="e1">one</message>
  <message channel="b">two</message>
  <message event="e3" channel="c"><n>3</n></message>
</messages>`
	draftsEqual(t, mustParse(t, "text/xml", body), []message.Draft{
		{Channel: "a", Event: "e1", Type: "text/plain", Data: []byte("one")},
		{Channel: "b", Type: "text/plain", Data: []byte("two")},
		{Channel: "c", Event: "e3", Type: "application/xml", Data: []byte("<n>3</n>")},
	})
}

func TestXMLMultiChannelGivesOneDraftPerChannel(t *testing.T) {
	tests := []struct {
		name, body string
		want       []message.Draft
	}{
		{"list", `<message channel="a,b/c,d" event="e">hi</message>`, []message.Draft{
			{Channel: "a", Event: "e", Type: "text/plain", Data: []byte("hi")},
			{Channel: "b/c", Event: "e", Type: "text/plain", Data: []byte("hi")},
			{Channel: "d", Event: "e", Type: "text/plain", Data: []byte("hi")},
		}},
		{"repeat dropped", `<message channel="a,b,a">hi</message>`, []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte("hi")},
			{Channel: "b", Type: "text/plain", Data: []byte("hi")},
		}},
		{"xml payload", `<message channel="a,b"><p>x</p></message>`, []message.Draft{
			{Channel: "a", Type: "application/xml", Data: []byte("<p>x</p>")},
			{Channel: "b", Type: "application/xml", Data: []byte("<p>x</p>")},
		}},
		{"in a batch", `<messages><message channel="a,b">1</message><message channel="c">2</message></messages>`, []message.Draft{
			{Channel: "a", Type: "text/plain", Data: []byte("1")},
			{Channel: "b", Type: "text/plain", Data: []byte("1")},
			{Channel: "c", Type: "text/plain", Data: []byte("2")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			draftsEqual(t, mustParse(t, ctXML, tt.body), tt.want)
		})
	}
}

func TestXMLDecodesCDATAAndEntities(t *testing.T) {
	tests := []struct {
		name, payload, want string
	}{
		{"predefined entities", "&lt;&amp;&gt;&quot;&apos;", `<&>"'`},
		{"character references", "&#65;&#x42;&#x1F600;", "AB😀"},
		{"cdata", "<![CDATA[<raw> &amp; ]]>", "<raw> &amp; "},
		{"mixed", "a &amp; <![CDATA[<b>]]> c", "a & <b> c"},
		{"cdata line break", "<![CDATA[one\ntwo]]>", "one\ntwo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, ctXML, `<message channel="a">`+tt.payload+`</message>`)
			draftsEqual(t, got, []message.Draft{{Channel: "a", Type: "text/plain", Data: []byte(tt.want)}})
		})
	}
}

func TestXMLKeepsInnerXMLVerbatim(t *testing.T) {
	tests := []struct {
		name, inner string
	}{
		{"one child", "<b>bold</b>"},
		{"text around children", "  lead <i a='1'  b=\"&amp;\">x &lt; y</i>\r\n tail "},
		{"empty child forms", "<br/><br></br><br />"},
		{"entities stay escaped", "<p>&amp;&#65;<![CDATA[<raw>]]></p>"},
		{"comment inside", "<p/><!-- note -->"},
		{"namespaced child", `<x:item xmlns:x="urn:example:x"><x:n>1</x:n></x:item>`},
		{"nested message element", `<message channel="inner">not a batch</message>`},
		{"deep", strings.Repeat("<d>", 50) + "x" + strings.Repeat("</d>", 50)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, ctXML, `<message channel="a" event="e">`+tt.inner+`</message>`)
			draftsEqual(t, got, []message.Draft{{Channel: "a", Event: "e", Type: "application/xml", Data: []byte(tt.inner)}})
		})
	}
}

// billionLaughs is the classic entity-expansion bomb.
const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<message channel="a">&lol9;</message>`

func TestXMLRejectsEntityExpansion(t *testing.T) {
	start := time.Now()
	wantError(t, ctXML, billionLaughs, "DTDs are not accepted")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("rejecting the billion laughs took %v", d)
	}
}

func TestXMLRejectsDTDs(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"external entity", `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><message channel="a">&xxe;</message>`},
		{"parameter entity", `<!DOCTYPE m [<!ENTITY % p SYSTEM "http://example.com/x.dtd"> %p;]><message channel="a">x</message>`},
		{"external DTD", `<!DOCTYPE message SYSTEM "http://example.com/m.dtd"><message channel="a">x</message>`},
		{"plain doctype", `<!DOCTYPE message><message channel="a">x</message>`},
		{"bare entity declaration", `<!ENTITY x "y"><message channel="a">x</message>`},
		{"inside the payload", `<message channel="a"><!DOCTYPE x>x</message>`},
		{"inside a child", `<message channel="a"><b><!ENTITY x "y"></b></message>`},
		{"after the root", `<message channel="a">x</message><!DOCTYPE x>`},
		{"unterminated internal subset", `<!DOCTYPE lolz [<!ENTITY lol "lol">`},
		{"unterminated declaration", `<!DOCTYPE`},
		{"lower case", `<!doctype message><message channel="a">x</message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctXML, tt.body, "DTDs are not accepted")
		})
	}
}

func TestXMLRejectsProcessingInstructions(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"stylesheet", `<?xml-stylesheet href="x.xsl"?><message channel="a">x</message>`, "processing instruction <?xml-stylesheet?> is not accepted"},
		{"inside the payload", `<message channel="a"><?php echo 1; ?></message>`, "message 0: processing instruction <?php?> is not accepted"},
		{"inside a child", `<message channel="a"><b><?pi?></b></message>`, "processing instruction <?pi?> is not accepted"},
		{"declaration after white space", ` <?xml version="1.0"?><message channel="a">x</message>`, "processing instruction <?xml?> is not accepted"},
		{"declaration after a comment", `<!-- c --><?xml version="1.0"?><message channel="a">x</message>`, "processing instruction <?xml?> is not accepted"},
		{"declaration twice", `<?xml version="1.0"?><?xml version="1.0"?><message channel="a">x</message>`, "processing instruction <?xml?> is not accepted"},
		{"declaration in the payload", `<message channel="a"><?xml version="1.0"?></message>`, "processing instruction <?xml?> is not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctXML, tt.body, tt.want)
		})
	}
}

func TestXMLRejectsUnknownEntities(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{"in text", `<message channel="a">&nbsp;</message>`},
		{"in a child", `<message channel="a"><b>&copy;</b></message>`},
		{"in an attribute", `<message channel="a&x;">x</message>`},
		{"no semicolon", `<message channel="a">&amp</message>`},
		{"bare ampersand", `<message channel="a">a & b</message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctXML, tt.body, "invalid character entity")
		})
	}
}

func TestXMLRejectsMalformedBatch(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"unknown attribute", `<message channel="a" type="text/html">x</message>`, "message 0: unknown attribute type on <message>; only channel and event are accepted"},
		{"namespace declaration", `<message xmlns="" channel="a">x</message>`, "unknown attribute xmlns on <message>"},
		{"prefixed attribute", `<message xmlns:p="urn:p" p:channel="a">x</message>`, "unknown attribute xmlns:p on <message>"},
		{"attribute on messages", `<messages version="2"><message channel="a">x</message></messages>`, "unknown attribute version on <messages>"},
		{"repeated attribute", `<message channel="a" channel="b">x</message>`, "message 0: attribute channel given twice"},
		{"missing channel", `<message event="e">x</message>`, "message 0: no channel attribute"},
		{"missing channel later", `<messages><message channel="a">x</message><message>y</message></messages>`, "message 1: no channel attribute"},
		{"empty channel", `<message channel="">x</message>`, "message 0: channel name is empty"},
		{"empty channel in list", `<message channel="a,,b">x</message>`, "message 0: channel name is empty"},
		{"bad event", `<message channel="a" event="a b">x</message>`, "message 0: event name has the byte ' '"},
		{"other root", `<msg channel="a">x</msg>`, "root element <msg> is not accepted; send <message> or <messages>"},
		{"namespaced root", `<message xmlns="urn:x"/>`, "root element <urn:x:message> is not accepted"},
		{"second root", `<message channel="a">x</message><message channel="b">y</message>`, "more than one root element"},
		{"text at root", `<message channel="a">x</message> trailing`, "text outside the root element"},
		{"text before root", `hello<message channel="a">x</message>`, "text outside the root element"},
		{"text in messages", `<messages>hi<message channel="a">x</message></messages>`, "text inside <messages> but outside any <message>"},
		{"other element in messages", `<messages><msg channel="a">x</msg></messages>`, "<messages> holds only <message> elements, not <msg>"},
		{"nested messages", `<messages><messages/></messages>`, "<messages> holds only <message> elements, not <messages>"},
		{"unclosed", `<message channel="a">x`, "message 0: invalid XML"},
		{"mismatched end tag", `<message channel="a"><b>x</c></message>`, "message 0: invalid XML"},
		{"unquoted attribute", `<message channel=a>x</message>`, "invalid XML"},
		{"attribute without value", `<message channel>x</message>`, "invalid XML"},
		{"other encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><message channel="a">x</message>`, "only UTF-8 is accepted"},
		{"other version", `<?xml version="1.1"?><message channel="a">x</message>`, "invalid XML"},
		{"nul reference", `<message channel="a">&#0;</message>`, "invalid XML"},
		{"not XML", `[{"channel":"a","data":1}]`, "text outside the root element"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ctXML, tt.body, tt.want)
		})
	}
}

// TestXMLDeepNestingIsHandled nests far deeper than any real payload: it
// must be read (encoding/xml's Token keeps no recursion) or refused, fast.
func TestXMLDeepNestingIsHandled(t *testing.T) {
	const depth = 100_000
	inner := strings.Repeat("<d>", depth) + strings.Repeat("</d>", depth)
	start := time.Now()
	got := mustParse(t, ctXML, `<message channel="a">`+inner+`</message>`)
	if string(got[0].Data) != inner {
		t.Fatal("deeply nested payload was not kept verbatim")
	}
	wantError(t, ctXML, `<message channel="a">`+strings.Repeat("<d>", depth), "invalid XML")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("deep nesting took %v", d)
	}
}
