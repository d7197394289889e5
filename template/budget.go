package template

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/flosch/pongo2/v6"
)

// budget bounds one render: the bytes written, the size of every value
// computed on the way, and the time (ctx). It is the writer pongo2 renders
// into. pongo2 ignores write errors and has no hook of its own, so the
// parsed template is instrumented (see instrument): every expression and
// every filter call of it checks the budget first and fails once it is
// spent, which stops loops, and checks the size of what it computed.
type budget struct {
	ctx context.Context
	max int // negative: no cap
	buf bytes.Buffer
	err error // the first failure; every later check returns it
}

// spent reports the failure that ends the render, if any.
func (b *budget) spent() error {
	if b.err == nil && b.ctx.Err() != nil {
		b.err = context.Cause(b.ctx)
	}
	return b.err
}

func (b *budget) Write(p []byte) (int, error) {
	if err := b.spent(); err != nil {
		return 0, err
	}
	if b.max >= 0 && b.buf.Len()+len(p) > b.max {
		b.err = fmt.Errorf("renders to more than %d bytes, the cap on one rendered string", b.max)
		return 0, b.err
	}
	return b.buf.Write(p)
}

// tooLarge checks a computed value.
func (b *budget) tooLarge(v *pongo2.Value) error {
	if b.max >= 0 && v != nil && v.IsString() && v.Len() > b.max {
		b.err = fmt.Errorf("computes a value of more than %d bytes, the cap on one rendered string", b.max)
	}
	return b.err
}

// maxItems caps the lists the split and make_list filters make: a list of
// n one-character strings costs the host far more than n bytes.
func (b *budget) maxItems() int { return b.max / 16 }

// guard is an expression of the template that checks the budget.
type guard struct {
	inner pongo2.IEvaluator
	b     *budget
}

func (g *guard) Execute(ctx *pongo2.ExecutionContext, w pongo2.TemplateWriter) *pongo2.Error {
	if err := g.b.spent(); err != nil {
		return &pongo2.Error{Sender: "lading", OrigError: err}
	}
	return g.inner.Execute(ctx, w)
}

func (g *guard) GetPositionToken() *pongo2.Token { return g.inner.GetPositionToken() }
func (g *guard) FilterApplied(name string) bool  { return g.inner.FilterApplied(name) }

func (g *guard) Evaluate(ctx *pongo2.ExecutionContext) (*pongo2.Value, *pongo2.Error) {
	if err := g.b.spent(); err != nil {
		return nil, &pongo2.Error{Sender: "lading", OrigError: err}
	}
	v, perr := g.inner.Evaluate(ctx)
	if perr != nil {
		return v, perr
	}
	if err := g.b.tooLarge(v); err != nil {
		return nil, &pongo2.Error{Sender: "lading", OrigError: err}
	}
	// A float the template computed ({{ x * 2 }}, {{ 1.5 }}) prints as
	// those of the variables do.
	if v != nil && v.IsFloat() {
		if f, ok := v.Interface().(float64); ok {
			return pongo2.AsValue(number(f)), nil
		}
	}
	return v, nil
}

// guardFilter wraps a filter call: it checks the budget, refuses
// arguments that would make the filter build an over-budget value before
// it could be looked at, and checks what the filter returns.
func (b *budget) guardFilter(name string, fn pongo2.FilterFunction) pongo2.FilterFunction {
	return func(in, param *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
		if err := b.spent(); err != nil {
			return nil, &pongo2.Error{Sender: "lading", OrigError: err}
		}
		if err := b.filterArgs(name, in, param); err != nil {
			b.err = err
			return nil, &pongo2.Error{Sender: "lading", OrigError: err}
		}
		out, perr := fn(in, param)
		if perr != nil {
			return out, perr
		}
		if err := b.tooLarge(out); err != nil {
			return nil, &pongo2.Error{Sender: "lading", OrigError: err}
		}
		return out, nil
	}
}

func (b *budget) filterArgs(name string, in, param *pongo2.Value) error {
	if b.max < 0 {
		return nil
	}
	over := func(what string, n int) error {
		return fmt.Errorf("filter %s: %s %d is over the cap of %d", name, what, n, b.max)
	}
	switch name {
	case "rjust", "ljust", "center", "floatformat":
		if n := param.Integer(); n > b.max || -n > b.max {
			return over("width", n)
		}
	case "stringformat":
		for _, f := range strings.FieldsFunc(param.String(), func(r rune) bool { return r < '0' || r > '9' }) {
			if len(f) > 7 || atoi(f) > b.max {
				return over("width", atoi(f))
			}
		}
	case "make_list":
		if n := utf8.RuneCountInString(in.String()); n > b.maxItems() {
			return fmt.Errorf("filter %s: a list of %d items is over the cap of %d", name, n, b.maxItems())
		}
	case "split":
		s, sep := in.String(), param.String()
		n := utf8.RuneCountInString(s)
		if sep != "" {
			n = strings.Count(s, sep) + 1
		}
		if n > b.maxItems() {
			return fmt.Errorf("filter %s: a list of %d items is over the cap of %d", name, n, b.maxItems())
		}
	case "join":
		if in.CanSlice() && in.Len()*len(param.String()) > b.max {
			return over("separators of", in.Len()*len(param.String()))
		}
	}
	return nil
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
		if n > 1<<30 {
			return 1 << 30
		}
	}
	return n
}

var (
	evaluatorType = reflect.TypeFor[pongo2.IEvaluator]()
	filterFnType  = reflect.TypeFor[pongo2.FilterFunction]()
)

// instrument replaces, in the parsed template, every expression with a
// guard and every filter function with a guarded one, all bound to b. It
// writes unexported fields of pongo2's nodes (through reflect.NewAt, the
// only way to), of a tree this package parsed and owns: nothing outside
// this render sees the change.
func instrument(tpl *pongo2.Template, b *budget) {
	in := &instrumenter{b: b, seen: map[uintptr]bool{}}
	in.walk(reflect.ValueOf(tpl).Elem().FieldByName("root"))
}

type instrumenter struct {
	b    *budget
	seen map[uintptr]bool
}

// writable returns v, which must be addressable, without the read-only
// flag reflect gives unexported fields.
func writable(v reflect.Value) reflect.Value {
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

func (in *instrumenter) walk(v reflect.Value) {
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			in.walk(v.Elem())
		}
	case reflect.Pointer:
		if v.IsNil() || skip(v.Type().Elem()) || in.seen[v.Pointer()] {
			return
		}
		in.seen[v.Pointer()] = true
		in.walk(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[guard]() || skip(v.Type()) || !v.CanAddr() {
			return
		}
		name := ""
		if v.Type().Name() == "filterCall" {
			name = v.FieldByName("name").String()
		}
		for i := range v.NumField() {
			f := writable(v.Field(i))
			switch {
			case f.Type() == filterFnType && !f.IsNil():
				fn := f.Interface().(pongo2.FilterFunction)
				f.Set(reflect.ValueOf(in.b.guardFilter(name, fn)))
			default:
				in.field(f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			in.field(v.Index(i))
		}
	case reflect.Map:
		if v.Type().Elem() == evaluatorType {
			for _, k := range v.MapKeys() {
				e := v.MapIndex(k)
				if e.IsNil() {
					continue
				}
				in.walk(e)
				v.SetMapIndex(k, reflect.ValueOf(pongo2.IEvaluator(&guard{inner: e.Interface().(pongo2.IEvaluator), b: in.b})))
			}
			return
		}
		for _, k := range v.MapKeys() {
			in.walk(v.MapIndex(k))
		}
	}
}

// field walks a settable value and, when it is an expression, guards it.
func (in *instrumenter) field(f reflect.Value) {
	if f.Type() == evaluatorType {
		if f.IsNil() {
			return
		}
		in.walk(f.Elem())
		f.Set(reflect.ValueOf(&guard{inner: f.Interface().(pongo2.IEvaluator), b: in.b}))
		return
	}
	in.walk(f)
}
