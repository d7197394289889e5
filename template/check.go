package template

import (
	"fmt"
	"reflect"
	"sort"

	"github.com/flosch/pongo2/v6"
)

// The checks below walk pongo2's parsed template. Its nodes are unexported
// types, so they are read with reflection (read only: reflect lets a
// program read unexported fields, not call or change them). The names of
// the types and fields are those of pongo2 v6.0.0; the tests fail if an
// upgrade renames them, because the undefined names they expect would no
// longer be found.

// pongo2's variablePart.typ of a name (varTypeIdent) and of a subscript
// (varTypeSubscript).
const (
	partIdent     = 1
	partSubscript = 2
)

type checker struct {
	vars  pongo2.Context
	bound map[string]bool // names the template binds itself
	seen  map[uintptr]bool
	err   error
}

// check fails on the first variable or function the template uses that is
// not defined, on an autoescape tag of the template's own, and on a lading
// filter whose name another package took.
func check(tpl *pongo2.Template, vars pongo2.Context) error {
	root := reflect.ValueOf(tpl).Elem().FieldByName("root")
	c := &checker{vars: vars, bound: map[string]bool{"forloop": true, "pongo2": true}, seen: map[uintptr]bool{}}
	// The root holds one node, lading's {% autoescape off %}; more means
	// the template closed it itself.
	nodes := root.Elem().FieldByName("Nodes")
	if nodes.Len() != 1 || typeName(nodes.Index(0)) != "tagAutoescapeNode" {
		return errAutoescape
	}
	c.collectBound(root)
	c.seen = map[uintptr]bool{}
	c.walkFields(nodes.Index(0).Elem().Elem(), false)
	return c.err
}

var errAutoescape = fmt.Errorf("the autoescape tag is not supported: lading never escapes what it renders")

// typeName returns the name of the type a pointer or interface points to.
func typeName(v reflect.Value) string {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	return v.Type().Name()
}

// notTree are the types that are not part of a template's tree.
var notTree = map[reflect.Type]bool{
	reflect.TypeFor[pongo2.Template](): true, reflect.TypeFor[pongo2.TemplateSet](): true,
	reflect.TypeFor[pongo2.Token](): true, reflect.TypeFor[pongo2.Parser](): true,
	reflect.TypeFor[pongo2.Value](): true, reflect.TypeFor[reflect.Value](): true,
}

// skip reports the types that are not part of a template's tree.
func skip(t reflect.Type) bool { return notTree[t] }

// nodes calls fn for every struct in the tree under v, once each.
func (c *checker) nodes(v reflect.Value, fn func(reflect.Value)) {
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			c.nodes(v.Elem(), fn)
		}
	case reflect.Pointer:
		if v.IsNil() || skip(v.Type().Elem()) || c.seen[v.Pointer()] {
			return
		}
		c.seen[v.Pointer()] = true
		c.nodes(v.Elem(), fn)
	case reflect.Struct:
		if skip(v.Type()) {
			return
		}
		fn(v)
		for i := range v.NumField() {
			c.nodes(v.Field(i), fn)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			c.nodes(v.Index(i), fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			c.nodes(v.MapIndex(k), fn)
		}
	}
}

// collectBound records the names {% for %}, {% with %} and {% set %} bind
// anywhere in the template.
func (c *checker) collectBound(root reflect.Value) {
	c.nodes(root, func(v reflect.Value) {
		switch v.Type().Name() {
		case "tagForNode":
			c.bound[v.FieldByName("key").String()] = true
			if name := v.FieldByName("value").String(); name != "" {
				c.bound[name] = true
			}
		case "tagSetNode":
			c.bound[v.FieldByName("name").String()] = true
		case "tagWithNode":
			for _, k := range v.FieldByName("withPairs").MapKeys() {
				c.bound[k.String()] = true
			}
		}
	})
}

// walk checks the tree under v. lenient: a bare undefined variable is
// allowed there (a condition of {% if %}, or before a default filter);
// undefined functions never are.
func (c *checker) walk(v reflect.Value, lenient bool) {
	if c.err != nil {
		return
	}
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			c.walk(v.Elem(), lenient)
		}
	case reflect.Pointer:
		if v.IsNil() || skip(v.Type().Elem()) || c.seen[v.Pointer()] {
			return
		}
		c.seen[v.Pointer()] = true
		c.walk(v.Elem(), lenient)
	case reflect.Struct:
		if !skip(v.Type()) {
			c.walkStruct(v, lenient)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			c.walk(v.Index(i), lenient)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			c.walk(v.MapIndex(k), lenient)
		}
	}
}

func (c *checker) walkFields(v reflect.Value, lenient bool) {
	for i := range v.NumField() {
		c.walk(v.Field(i), lenient)
	}
}

func (c *checker) walkStruct(v reflect.Value, lenient bool) {
	switch v.Type().Name() {
	case "tagAutoescapeNode":
		c.err = errAutoescape
	case "tagIfNode":
		c.walk(v.FieldByName("conditions"), true)
		c.walk(v.FieldByName("wrappers"), false)
	case "nodeFilteredVariable":
		chain := v.FieldByName("filterChain")
		for i := range chain.Len() {
			switch chain.Index(i).Elem().FieldByName("name").String() {
			case "default", "default_if_none":
				lenient = true
			}
		}
		c.walk(v.FieldByName("resolver"), lenient)
		c.walk(chain, false)
	case "filterCall":
		if name := v.FieldByName("name").String(); foreign[name] {
			c.err = fmt.Errorf("filter %s: another package of this program registered a pongo2 filter of that name, which hides lading's", name)
			return
		}
		c.walkFields(v, false)
	case "variableResolver":
		c.resolver(v, lenient)
		c.walkFields(v, false)
	default:
		c.walkFields(v, lenient)
	}
}

// resolver checks one variable path or function call.
func (c *checker) resolver(v reflect.Value, lenient bool) {
	parts := v.FieldByName("parts")
	if parts.Len() == 0 {
		return
	}
	first := parts.Index(0).Elem()
	name := first.FieldByName("s").String()
	if first.FieldByName("isFunctionCall").Bool() {
		if _, ok := c.vars[name]; !ok && !c.bound[name] {
			c.err = &UndefinedError{Name: name, Defined: c.defined(), Function: true}
		}
		return
	}
	if lenient || c.bound[name] {
		return
	}
	path := []any{name}
	shown := name
	for i := 1; i < parts.Len(); i++ {
		p := parts.Index(i).Elem()
		switch p.FieldByName("typ").Int() {
		case partIdent:
			key := p.FieldByName("s").String()
			path, shown = append(path, key), shown+"."+key
		case partSubscript:
			key, ok := literal(p.FieldByName("subscript"))
			if !ok {
				i = parts.Len() // a computed subscript: left to pongo2
				continue
			}
			if str, isStr := key.(string); isStr {
				key = str
				shown += "['" + str + "']"
			} else {
				shown += fmt.Sprintf("[%d]", key)
			}
			path = append(path, key)
		default:
			i = parts.Len()
			continue
		}
		if p.FieldByName("isFunctionCall").Bool() {
			break // a method: in a map, it must be a key
		}
	}
	if !defined(c.vars, path) {
		c.err = &UndefinedError{Name: shown, Defined: c.defined()}
	}
}

// literal returns the value of a subscript written as a literal string or
// integer (m['a.csv'], list[0]), reading through the expression nodes
// pongo2 wraps every expression in; ok is false for anything computed.
func literal(v reflect.Value) (key any, ok bool) {
	for {
		for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return nil, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return nil, false
		}
		next := func(inner, other string) bool {
			o := v.FieldByName(other)
			if o.IsValid() && !o.IsNil() {
				return false
			}
			v = v.FieldByName(inner)
			return true
		}
		switch v.Type().Name() {
		case "Expression", "relationalExpression":
			ok = next("expr1", "expr2")
		case "term":
			ok = next("factor1", "factor2")
		case "power":
			ok = next("power1", "power2")
		case "simpleExpression":
			ok = !v.FieldByName("negate").Bool() && !v.FieldByName("negativeSign").Bool() && next("term1", "term2")
		case "nodeFilteredVariable":
			ok = v.FieldByName("filterChain").Len() == 0 && next("resolver", "")
		case "stringResolver":
			return v.FieldByName("val").String(), true
		case "intResolver":
			return int(v.FieldByName("val").Int()), true
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
	}
}

// defined returns the top-level variable names, without lading's
// functions, sorted.
func (c *checker) defined() []string {
	names := make([]string, 0, len(c.vars))
	for k := range c.vars {
		if k != "secret" || reflect.ValueOf(c.vars[k]).Kind() != reflect.Func {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// defined reports whether path resolves in vars: names and string
// subscripts in maps with string keys, integer subscripts in slices and
// arrays. Past a value of another kind (a struct, a map with other keys)
// the rest of the path is left to pongo2.
func defined(vars map[string]any, path []any) bool {
	v, ok := vars[path[0].(string)]
	if !ok {
		return false
	}
	for _, key := range path[1:] {
		rv := reflect.ValueOf(v)
		switch k := key.(type) {
		case string:
			if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
				return true
			}
			got := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
			if !got.IsValid() {
				return false
			}
			v = got.Interface()
		case int:
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
				return true
			}
			if k < 0 || k >= rv.Len() {
				return false
			}
			v = rv.Index(k).Interface()
		}
	}
	return true
}
