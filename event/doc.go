// Package event is the public Go form of the tidegate change event envelope
// (proto/tidegate/v1/event.proto) and its deterministic JSON rendering.
//
// Consumers of the bus import this package to decode messages:
//
//	var e event.Event
//	err := proto.Unmarshal(msg.Data, &e)
//
// The JSON rendering (AppendRowJSON, AppendEventJSON) is the document shape
// that sinks write; docs/types.md lists how each value kind is rendered.
package event
