package protocol

import "regexp"

var (
	uuidRE = regexp.MustCompile(`^[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}$`)
	pdhRE  = regexp.MustCompile(`^[0-9a-f]{32}\+[0-9]+$`)
)

// IsUUID reports whether s has the form of an Arvados uuid.
func IsUUID(s string) bool { return uuidRE.MatchString(s) }

// IsPDH reports whether s has the form of a portable data hash.
func IsPDH(s string) bool { return pdhRE.MatchString(s) }
