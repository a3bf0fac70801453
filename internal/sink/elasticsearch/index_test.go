package elasticsearch

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidegate/tidegate/event"
)

func TestSanitizeIndexName(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct{ in, want string }{
		{"shop.public.Orders", "shop.public.orders"},
		{`a\b/c*d?e"f<g>h|i,j#k:l m%n`, "a_b_c_d_e_f_g_h_i_j_k_l_m_n"},
		{"-_+.hidden", "hidden"},
		{"__x", "x"},
		{"Ünïcode.Tåble", "ünïcode.tåble"},
		{"tab\there", "tab_here"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := sanitizeIndexName(tt.in); got != tt.want {
			t.Errorf("sanitizeIndexName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	a, b := sanitizeIndexName(long+"x"), sanitizeIndexName(long+"y")
	if len(a) > maxIndexNameBytes || len(b) > maxIndexNameBytes {
		t.Errorf("long names are %d and %d bytes, max %d", len(a), len(b), maxIndexNameBytes)
	}
	if a == b {
		t.Error("two long names that differ at the end map to the same index")
	}
	multi := sanitizeIndexName(strings.Repeat("é", 200))
	if !utf8.ValidString(multi) || len(multi) > maxIndexNameBytes {
		t.Errorf("multi-byte name cut wrongly: %d bytes, valid UTF-8 %v", len(multi), utf8.ValidString(multi))
	}
}

func FuzzSanitizeIndexName(f *testing.F) {
	for _, s := range []string{"shop.public.orders", "-x", "A B", strings.Repeat("é", 200), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeIndexName(s)
		if len(got) > maxIndexNameBytes {
			t.Fatalf("%d bytes", len(got))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if strings.ContainsAny(got, "\\/*?\"<>|,#: %") {
			t.Fatalf("forbidden character in %q", got)
		}
		if got != "" && strings.ContainsRune("-_+.", rune(got[0])) {
			t.Fatalf("bad first character in %q", got)
		}
		if got != strings.ToLower(got) && len(got) < maxIndexNameBytes-9 {
			t.Fatalf("not lowercase: %q", got)
		}
	})
}

func TestIndexNamer(t *testing.T) {
	n := newIndexNamer("{source}-{database}-{schema}-{table}")
	o := &event.Origin{Source: "Shop", Database: "App", Schema: "Sales", Table: "Order Lines"}
	got, err := n.name(o)
	if err != nil || got != "shop-app-sales-order_lines" {
		t.Errorf("name = %q, %v", got, err)
	}
	if _, err := newIndexNamer("{schema}").name(&event.Origin{Table: "x"}); err == nil {
		t.Error("an empty rendering is accepted")
	}
}
