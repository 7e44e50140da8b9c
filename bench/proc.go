package bench

import (
	"os"
	"strconv"
)

// EmulatorEnv is the environment that points the AWS SDK — the CLI's default
// configuration and the functions' — at emulators, with dummy credentials and no
// shared configuration files.
func EmulatorEnv(dynamoURL, sqsURL string) []string {
	return []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + dynamoURL, "AWS_ENDPOINT_URL_SQS=" + sqsURL,
	}
}

// BaseEnv is the little of this process's environment a child needs: PATH and HOME.
func BaseEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, extra...)
}

// Port returns ":port"-less "127.0.0.1:port" and the PORT variable for it.
func Port(port int) (addr, env string) {
	return "127.0.0.1:" + strconv.Itoa(port), "PORT=" + strconv.Itoa(port)
}
