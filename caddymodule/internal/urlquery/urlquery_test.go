package urlquery

import (
	"net/url"
	"testing"
)

func TestGetMatchesParseQuery(t *testing.T) {
	queries := []string{
		"", "a=1", "a=1&a=2", "b=2&a=1", "a", "a=", "=1", "&&a=1&", "a=x%20y", "a=x+y",
		"%61=1", "a%3D=1", "a=1;b=2&a=3", "a=%zz&a=2", "%zz=1&a=2", "a=%2F..%2F", "last_id=earliest&wait=0",
		"token=ab.cd-ef&transport=sse", "a=1&b=%", "a+b=1", "a%20b=1",
	}
	keys := []string{"a", "b", "a b", "a=", "last_id", "wait", "token", "transport", ""}
	for _, q := range queries {
		values, _ := url.ParseQuery(q)
		for _, k := range keys {
			if got, want := Get(q, k), values.Get(k); got != want {
				t.Errorf("Get(%q, %q) = %q, url.ParseQuery gives %q", q, k, got, want)
			}
		}
	}
}

func FuzzGet(f *testing.F) {
	f.Add("a=1&b=%20", "b")
	f.Fuzz(func(t *testing.T, q, k string) {
		values, _ := url.ParseQuery(q)
		if got, want := Get(q, k), values.Get(k); got != want {
			t.Fatalf("Get(%q, %q) = %q, url.ParseQuery gives %q", q, k, got, want)
		}
	})
}

func BenchmarkGet(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Get("last_id=earliest&wait=0", "wait")
	}
}
