package logscan

import "strings"

type ansiState uint8

const (
	ansiText ansiState = iota
	ansiEsc
	ansiEscIntermediate
	ansiCSI
	ansiString
	ansiStringEsc
)

// StripANSI removes terminal escape sequences (colours, cursor moves, window
// titles) from s. It also drops the remaining control characters except tab,
// because evidence lines end up on people's terminals and a log must not be
// able to drive them. Unterminated sequences are dropped to the end of s.
func StripANSI(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if isControl(s[i]) {
			break
		}
	}
	if i == len(s) {
		return s
	}

	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	state := ansiText
	for ; i < len(s); i++ {
		c := s[i]
		switch state {
		case ansiText:
			switch {
			case c == 0x1b:
				state = ansiEsc
			case isControl(c):
			default:
				b.WriteByte(c)
			}
		case ansiEsc:
			switch {
			case c == '[':
				state = ansiCSI
			case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
				state = ansiString
			case c >= 0x20 && c <= 0x2f:
				state = ansiEscIntermediate
			case c >= 0x30 && c <= 0x7e:
				state = ansiText
			default:
				// Not a sequence after all: let the text state decide on c.
				state = ansiText
				i--
			}
		case ansiEscIntermediate:
			switch {
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x30 && c <= 0x7e:
				state = ansiText
			default:
				state = ansiText
				i--
			}
		case ansiCSI:
			switch {
			case c >= 0x20 && c <= 0x3f:
			case c >= 0x40 && c <= 0x7e:
				state = ansiText
			default:
				state = ansiText
				i--
			}
		case ansiString:
			switch c {
			case 0x07:
				state = ansiText
			case 0x1b:
				state = ansiStringEsc
			}
		case ansiStringEsc:
			if c == '\\' {
				state = ansiText
				continue
			}
			// An ESC inside a string that is not the terminator starts the
			// next sequence, so an unterminated title does not eat the line.
			state = ansiEsc
			i--
		}
	}
	return b.String()
}

func isControl(c byte) bool {
	return (c < 0x20 && c != '\t') || c == 0x7f
}
