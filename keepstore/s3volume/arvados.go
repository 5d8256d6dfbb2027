package s3volume

import (
	"fmt"
	"strings"
	"time"
)

// ArvadosOptions reads the DriverParameters of an Arvados S3 volume
// (Bucket, Endpoint, Region, AccessKeyID, SecretAccessKey, PrefixLength,
// IndexPageSize, RaceWindow, ConnectTimeout, ReadTimeout; UsePathStyle is
// implied, and UnsafeDelete does not apply: a trash deadline not after now
// always deletes at once).
func ArvadosOptions(params map[string]any) (Options, error) {
	var o Options
	str := func(k string) (string, error) {
		switch v := params[k].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", fmt.Errorf("DriverParameters.%s is %v, not a string", k, v)
		}
	}
	dur := func(k string) (time.Duration, error) {
		switch v := params[k].(type) {
		case nil:
			return 0, nil
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, fmt.Errorf("DriverParameters.%s %q is not a duration like 1m or 24h", k, v)
			}
			return d, nil
		case int:
			return time.Duration(v) * time.Second, nil
		default:
			return 0, fmt.Errorf("DriverParameters.%s is %v, not a duration", k, v)
		}
	}
	var err error
	for _, f := range []struct {
		key string
		to  *string
	}{{"Bucket", &o.Bucket}, {"Endpoint", &o.Endpoint}, {"Region", &o.Region}, {"AccessKeyID", &o.AccessKeyID}, {"SecretAccessKey", &o.SecretAccessKey}} {
		if *f.to, err = str(f.key); err != nil {
			return Options{}, err
		}
	}
	for _, f := range []struct {
		key string
		to  *int
	}{{"PrefixLength", &o.PrefixLength}, {"IndexPageSize", &o.IndexPageSize}} {
		switch v := params[f.key].(type) {
		case nil:
		case int:
			*f.to = v
		default:
			return Options{}, fmt.Errorf("DriverParameters.%s is %v, not a number", f.key, v)
		}
	}
	for _, f := range []struct {
		key string
		to  *time.Duration
	}{{"RaceWindow", &o.RaceWindow}, {"ConnectTimeout", &o.ConnectTimeout}, {"ReadTimeout", &o.ReadTimeout}} {
		if *f.to, err = dur(f.key); err != nil {
			return Options{}, err
		}
	}
	if o.Endpoint != "" && !strings.Contains(o.Endpoint, "://") {
		o.Endpoint = "https://" + o.Endpoint
	}
	return o, o.check()
}
