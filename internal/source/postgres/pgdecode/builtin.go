package pgdecode

// kind selects the parser of a type.
type kind uint8

const (
	kindText        kind = iota // verbatim text (also the fallback for unknown types)
	kindBool                    // bool
	kindInt                     // int2, int4, int8
	kindUint32                  // oid, xid, cid (unsigned 32-bit, emitted as int)
	kindUint64                  // xid8
	kindFloat4                  // float4
	kindFloat8                  // float8
	kindNumeric                 // numeric
	kindMoney                   // money
	kindBytea                   // bytea
	kindTimestamptz             // timestamptz
	kindTimestamp               // timestamp
	kindDate                    // date
	kindTime                    // time
	kindTimetz                  // timetz
	kindInterval                // interval
	kindJSON                    // json, jsonb
	kindUUID                    // uuid
	kindPoint                   // point
	kindInt2Vector              // int2vector
	kindOIDVector               // oidvector
	kindArray                   // arrays (elem)
	kindDomain                  // domains (base)
	kindComposite               // composite types (fields)
	kindHstore                  // hstore extension
)

// typeInfo describes one type. Values are immutable once published.
type typeInfo struct {
	oid   uint32
	name  string // typname, or "schema.typname" outside public/pg_catalog
	label string // TypeName: name plus a qualifier for user types
	kind  kind
	delim byte   // array delimiter of this type as an element (typdelim)
	elem  uint32 // kindArray: element type
	base  uint32 // kindDomain: base type
	// kindComposite: attributes in order.
	fieldNames []string
	fieldTypes []uint32
}

// builtinTypes are the types of pg_catalog whose OIDs are fixed (OIDs below
// 10000 never change between PostgreSQL versions). Produced from the
// pg_type catalog of PostgreSQL 15; built-in types added later are looked
// up by Load like any other unknown OID.
var builtinTypes = func() map[uint32]*typeInfo {
	m := make(map[uint32]*typeInfo, 220)
	scalar := func(oid uint32, name string, k kind) {
		m[oid] = &typeInfo{oid: oid, name: name, label: name, kind: k, delim: ','}
	}
	array := func(oid, elem uint32) {
		e := m[elem]
		m[oid] = &typeInfo{oid: oid, name: "_" + e.name, label: "_" + e.name, kind: kindArray, delim: ',', elem: elem}
	}
	for _, b := range []struct {
		oid, array uint32
		name       string
		kind       kind
	}{
		{16, 1000, "bool", kindBool},
		{17, 1001, "bytea", kindBytea},
		{18, 1002, "char", kindText},
		{19, 1003, "name", kindText},
		{20, 1016, "int8", kindInt},
		{21, 1005, "int2", kindInt},
		{22, 1006, "int2vector", kindInt2Vector},
		{23, 1007, "int4", kindInt},
		{24, 1008, "regproc", kindText},
		{25, 1009, "text", kindText},
		{26, 1028, "oid", kindUint32},
		{27, 1010, "tid", kindText},
		{28, 1011, "xid", kindUint32},
		{29, 1012, "cid", kindUint32},
		{30, 1013, "oidvector", kindOIDVector},
		{114, 199, "json", kindJSON},
		{142, 143, "xml", kindText},
		{194, 0, "pg_node_tree", kindText},
		{600, 1017, "point", kindPoint},
		{601, 1018, "lseg", kindText},
		{602, 1019, "path", kindText},
		{603, 1020, "box", kindText},
		{604, 1027, "polygon", kindText},
		{628, 629, "line", kindText},
		{650, 651, "cidr", kindText},
		{700, 1021, "float4", kindFloat4},
		{701, 1022, "float8", kindFloat8},
		{705, 0, "unknown", kindText},
		{718, 719, "circle", kindText},
		{774, 775, "macaddr8", kindText},
		{790, 791, "money", kindMoney},
		{829, 1040, "macaddr", kindText},
		{869, 1041, "inet", kindText},
		{1033, 1034, "aclitem", kindText},
		{1042, 1014, "bpchar", kindText},
		{1043, 1015, "varchar", kindText},
		{1082, 1182, "date", kindDate},
		{1083, 1183, "time", kindTime},
		{1114, 1115, "timestamp", kindTimestamp},
		{1184, 1185, "timestamptz", kindTimestamptz},
		{1186, 1187, "interval", kindInterval},
		{1266, 1270, "timetz", kindTimetz},
		{1560, 1561, "bit", kindText},
		{1562, 1563, "varbit", kindText},
		{1700, 1231, "numeric", kindNumeric},
		{1790, 2201, "refcursor", kindText},
		{2202, 2207, "regprocedure", kindText},
		{2203, 2208, "regoper", kindText},
		{2204, 2209, "regoperator", kindText},
		{2205, 2210, "regclass", kindText},
		{2206, 2211, "regtype", kindText},
		{2249, 0, "record", kindText},
		{2275, 1263, "cstring", kindText},
		{2950, 2951, "uuid", kindUUID},
		{2970, 2949, "txid_snapshot", kindText},
		{3220, 3221, "pg_lsn", kindText},
		{3614, 3643, "tsvector", kindText},
		{3615, 3645, "tsquery", kindText},
		{3642, 3644, "gtsvector", kindText},
		{3734, 3735, "regconfig", kindText},
		{3769, 3770, "regdictionary", kindText},
		{3802, 3807, "jsonb", kindJSON},
		{3904, 3905, "int4range", kindText},
		{3906, 3907, "numrange", kindText},
		{3908, 3909, "tsrange", kindText},
		{3910, 3911, "tstzrange", kindText},
		{3912, 3913, "daterange", kindText},
		{3926, 3927, "int8range", kindText},
		{4072, 4073, "jsonpath", kindText},
		{4089, 4090, "regnamespace", kindText},
		{4096, 4097, "regrole", kindText},
		{4191, 4192, "regcollation", kindText},
		{4451, 6150, "int4multirange", kindText},
		{4532, 6151, "nummultirange", kindText},
		{4533, 6152, "tsmultirange", kindText},
		{4534, 6153, "tstzmultirange", kindText},
		{4535, 6155, "datemultirange", kindText},
		{4536, 6157, "int8multirange", kindText},
		{5038, 5039, "pg_snapshot", kindText},
		{5069, 271, "xid8", kindUint64},
	} {
		scalar(b.oid, b.name, b.kind)
		if b.array != 0 {
			array(b.array, b.oid)
		}
	}
	m[603].delim = ';' // box: "{(3,4),(1,2);(1,1),(0,0)}"
	return m
}()
