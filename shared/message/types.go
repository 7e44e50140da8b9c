package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Types are the message types of the original integration (the Botpress SDK defaults,
// research/botpress.md §4a) plus bloc. Payloads pass through unchanged; only the
// members a receiver cannot do without are checked, so newer optional members such as
// title or metadata keep working.
var Types = []string{"text", "markdown", "image", "audio", "video", "file", "location", "card", "carousel", "choice", "dropdown", "bloc"}

// KnownType reports whether t is one of Types.
func KnownType(t string) bool { return slices.Contains(Types, t) }

// ValidatePayload checks payload, a JSON object, against the schema of type t.
func ValidatePayload(t string, payload json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Invalidf("payload", "invalid_field_type", "payload must be a JSON object")
	}
	return validate(t, obj, "payload")
}

func validate(t string, obj map[string]any, path string) error {
	switch t {
	case "text":
		return needString(obj, path, "text")
	case "markdown":
		return needString(obj, path, "markdown")
	case "image", "audio", "video", "file":
		return needString(obj, path, t+"Url")
	case "location":
		for _, k := range []string{"latitude", "longitude"} {
			if _, ok := obj[k].(json.Number); !ok {
				return Invalidf(path+"."+k, "invalid_payload", "%s.%s must be a number", path, k)
			}
		}
		return nil
	case "card":
		return validateCard(obj, path)
	case "carousel":
		items, err := needArray(obj, path, "items")
		if err != nil {
			return err
		}
		for i, it := range items {
			card, ok := it.(map[string]any)
			p := fmt.Sprintf("%s.items[%d]", path, i)
			if !ok {
				return Invalidf(p, "invalid_payload", "%s must be a card object", p)
			}
			if err := validateCard(card, p); err != nil {
				return err
			}
		}
		return nil
	case "choice", "dropdown":
		if err := needString(obj, path, "text"); err != nil {
			return err
		}
		options, err := needArray(obj, path, "options")
		if err != nil {
			return err
		}
		for i, o := range options {
			p := fmt.Sprintf("%s.options[%d]", path, i)
			opt, ok := o.(map[string]any)
			if !ok {
				return Invalidf(p, "invalid_payload", "%s must be an object with label and value", p)
			}
			for _, k := range []string{"label", "value"} {
				if err := needString(opt, p, k); err != nil {
					return err
				}
			}
		}
		return nil
	case "bloc":
		items, err := needArray(obj, path, "items")
		if err != nil {
			return err
		}
		for i, it := range items {
			p := fmt.Sprintf("%s.items[%d]", path, i)
			item, ok := it.(map[string]any)
			if !ok {
				return Invalidf(p, "invalid_payload", "%s must be an object with type and payload", p)
			}
			typ, _ := item["type"].(string)
			if !slices.Contains([]string{"text", "image", "audio", "video", "file", "location"}, typ) {
				return Invalidf(p+".type", "invalid_payload", "%s.type must be text, image, audio, video, file or location", p)
			}
			inner, ok := item["payload"].(map[string]any)
			if !ok {
				return Invalidf(p+".payload", "invalid_payload", "%s.payload must be an object", p)
			}
			if err := validate(typ, inner, p+".payload"); err != nil {
				return err
			}
		}
		return nil
	}
	return Invalidf("type", "invalid_type", "type %q is not supported", clip(t))
}

func validateCard(obj map[string]any, path string) error {
	if err := needString(obj, path, "title"); err != nil {
		return err
	}
	actions, ok := obj["actions"]
	if !ok {
		return nil // a card without buttons is still a card
	}
	list, ok := actions.([]any)
	if !ok {
		return Invalidf(path+".actions", "invalid_payload", "%s.actions must be an array", path)
	}
	for i, a := range list {
		p := fmt.Sprintf("%s.actions[%d]", path, i)
		act, ok := a.(map[string]any)
		if !ok {
			return Invalidf(p, "invalid_payload", "%s must be an object with action, label and value", p)
		}
		if kind, _ := act["action"].(string); kind != "postback" && kind != "url" && kind != "say" {
			return Invalidf(p+".action", "invalid_payload", "%s.action must be postback, url or say", p)
		}
		for _, k := range []string{"label", "value"} {
			if err := needString(act, p, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func needString(obj map[string]any, path, key string) error {
	s, ok := obj[key].(string)
	if !ok || s == "" {
		return Invalidf(path+"."+key, "invalid_payload", "%s.%s must be a non-empty string", path, key)
	}
	return nil
}

func needArray(obj map[string]any, path, key string) ([]any, error) {
	a, ok := obj[key].([]any)
	if !ok || len(a) == 0 {
		return nil, Invalidf(path+"."+key, "invalid_payload", "%s.%s must be a non-empty array", path, key)
	}
	return a, nil
}
