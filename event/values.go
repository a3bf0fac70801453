package event

// Constructors for values, so sources do not build oneof wrappers by hand.

// Null returns the SQL NULL value.
func Null() *Value { return &Value{} }

// Bool returns a boolean value.
func Bool(b bool) *Value { return &Value{Kind: &Value_Bool{Bool: b}} }

// Int returns a signed integer value.
func Int(i int64) *Value { return &Value{Kind: &Value_Int{Int: i}} }

// Uint returns an unsigned integer value.
func Uint(u uint64) *Value { return &Value{Kind: &Value_Uint{Uint: u}} }

// Float returns a floating point value (NaN and infinities allowed).
func Float(f float64) *Value { return &Value{Kind: &Value_Float{Float: f}} }

// Decimal returns an exact decimal given as its digits.
func Decimal(s string) *Value { return &Value{Kind: &Value_Decimal{Decimal: s}} }

// Text returns a text value.
func Text(s string) *Value { return &Value{Kind: &Value_Text{Text: s}} }

// Bytes returns a binary value.
func Bytes(b []byte) *Value { return &Value{Kind: &Value_Bytes{Bytes: b}} }

// JSON returns a JSON value from its text.
func JSON(s string) *Value { return &Value{Kind: &Value_Json{Json: s}} }

// UUID returns a UUID value from its 16 bytes.
func UUID(b []byte) *Value { return &Value{Kind: &Value_Uuid{Uuid: b}} }

// TimestampValue returns a timestamp value.
func TimestampValue(t *Timestamp) *Value { return &Value{Kind: &Value_Timestamp{Timestamp: t}} }

// DateValue returns a date value.
func DateValue(d *Date) *Value { return &Value{Kind: &Value_Date{Date: d}} }

// TimeValue returns a time-of-day value.
func TimeValue(t *Time) *Value { return &Value{Kind: &Value_Time{Time: t}} }

// IntervalValue returns an interval value.
func IntervalValue(i *Interval) *Value { return &Value{Kind: &Value_Interval{Interval: i}} }

// ListValue returns a list value.
func ListValue(vs []*Value) *Value { return &Value{Kind: &Value_List{List: &List{Values: vs}}} }

// DocumentValue returns a nested document value.
func DocumentValue(r *Row) *Value { return &Value{Kind: &Value_Document{Document: r}} }

// IsNull reports whether v is SQL NULL.
func (v *Value) IsNull() bool { return v == nil || v.Kind == nil }

// Get returns the value of the named column, or nil when the row has no such column.
func (r *Row) Get(name string) *Value {
	for _, c := range r.GetColumns() {
		if c.Name == name {
			return c.Value
		}
	}
	return nil
}
