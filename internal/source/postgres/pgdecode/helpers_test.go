package pgdecode

import "strconv"

func strconvFloat32(f float32) string { return strconv.FormatFloat(float64(f), 'g', -1, 32) }
