package broker

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/rtcomm-harness/rtcomm-harness/spec"
)

// RoleCallController is the credentials-file role of users allowed to place
// third-party calls (3PCC_PLACE_CALL); see LoadCredentialsFile.
const RoleCallController = "call-controller"

// CredentialsFile is a parsed credentials file: passwords by user, and users by role.
type CredentialsFile struct {
	Users map[string]string
	Roles map[string][]string
}

// LoadCredentials reads a secure-mode credentials file and returns its passwords by
// user (roles are checked, then left out; LoadCredentialsFile returns them).
func LoadCredentials(path string) (map[string]string, error) {
	f, err := LoadCredentialsFile(path)
	if err != nil {
		return nil, err
	}
	return f.Users, nil
}

// LoadCredentialsFile reads a secure-mode credentials file.
//
// Format: UTF-8 text, one "user:password" per line. The user is an endpoint ID (the
// MQTT username a client must connect with); the password (or token) is everything
// after the LAST colon, so IDs may contain colons (sip:alice@example.com) but
// passwords may not. Leading and trailing whitespace of a line is ignored, inner
// whitespace is kept ("John Smith:pw"). Blank lines and lines whose first non-blank
// character is '#' are comments. Each user appears once; the password is not empty.
//
// A line "+<role> <user>" gives a user defined in the file a role ('+' cannot start a
// user line: endpoint IDs never contain it). The one role is "call-controller": the
// user may place third-party calls (3PCC_PLACE_CALL).
//
//	# rtcomm harness users
//	connector:s3cret-connector
//	alice:alice-pw
//	sip:bob@example.com:bob-pw
//	operator:op-pw
//	+call-controller operator
//
// Errors name the file and the line.
func LoadCredentialsFile(path string) (CredentialsFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CredentialsFile{}, fmt.Errorf("credentials: %w", err)
	}
	creds := make(map[string]string)
	firstLine := make(map[string]int)
	type grant struct {
		role, user string
		line       int
	}
	var grants []grant
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "+"); ok {
			role, user, _ := strings.Cut(rest, " ")
			user = strings.TrimSpace(user)
			if role != RoleCallController {
				return CredentialsFile{}, fmt.Errorf("credentials %s:%d: unknown role %q (want %q)", path, n, role, RoleCallController)
			}
			grants = append(grants, grant{role, user, n})
			continue
		}
		i := strings.LastIndexByte(line, ':')
		if i < 0 {
			return CredentialsFile{}, fmt.Errorf("credentials %s:%d: no ':' (want user:password)", path, n)
		}
		user, pw := line[:i], line[i+1:]
		if err := checkCredential(user, pw); err != nil {
			return CredentialsFile{}, fmt.Errorf("credentials %s:%d: %w", path, n, err)
		}
		if prev, dup := firstLine[user]; dup {
			return CredentialsFile{}, fmt.Errorf("credentials %s:%d: user %q already defined on line %d", path, n, user, prev)
		}
		firstLine[user] = n
		creds[user] = pw
	}
	if err := sc.Err(); err != nil {
		return CredentialsFile{}, fmt.Errorf("credentials %s: after line %d: %w", path, n, err)
	}
	if len(creds) == 0 {
		return CredentialsFile{}, fmt.Errorf("credentials %s: no user:password lines", path)
	}
	roles := map[string][]string{}
	for _, g := range grants {
		if _, ok := creds[g.user]; !ok {
			return CredentialsFile{}, fmt.Errorf("credentials %s:%d: role %s for %q, who has no user:password line", path, g.line, g.role, g.user)
		}
		roles[g.role] = append(roles[g.role], g.user)
	}
	return CredentialsFile{Users: creds, Roles: roles}, nil
}

// checkCredential: the user must be a valid endpoint ID (the identity rule compares
// it with topic levels) and the password non-empty and within MQTT's 65535 bytes.
func checkCredential(user, pw string) error {
	if err := spec.ValidateEndpointID(user); err != nil {
		return fmt.Errorf("user %q is not a valid endpoint ID: %w", user, err)
	}
	switch {
	case pw == "":
		return fmt.Errorf("user %q: %w", user, errEmptyPassword)
	case len(pw) > math.MaxUint16:
		return fmt.Errorf("user %q: password longer than 65535 bytes", user)
	}
	return nil
}

var errEmptyPassword = errors.New("empty password")
