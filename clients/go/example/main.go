// A Go client of EntitlementService, generated with buf.gen.go.yaml and built offline from
// Debian's packages (docs/api.md, "Clients in other languages"): a plan, an increment, and a
// refusal whose google.rpc.Status details (grpc-status-details-bin) are decoded.
// GRPC_TARGET (host:port) and TOKEN come from the environment.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	entitlementsv1 "entitlements.example/gen/entitlements/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv("TOKEN"))
	conn, err := grpc.DialContext(ctx, os.Getenv("GRPC_TARGET"), grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	client := entitlementsv1.NewEntitlementServiceClient(conn)

	plan, err := client.GetPlan(ctx, &entitlementsv1.GetPlanRequest{UserId: "go-user"})
	if err != nil || plan.GetPlan().GetCode() != "free" {
		fail("GetPlan: %v %v", plan, err)
	}
	used, err := client.IncrementUsage(ctx, &entitlementsv1.IncrementUsageRequest{UserId: "go-user", Metric: "jobs", Amount: 1, IdempotencyKey: "go-1"})
	if err != nil || used.GetQuota().GetUsed() != 1 {
		fail("IncrementUsage: %v %v", used, err)
	}
	_, err = client.IncrementUsage(ctx, &entitlementsv1.IncrementUsageRequest{UserId: "go-user", Metric: "jobs", Amount: 1000})
	refusal, _ := status.FromError(err)
	if refusal.Code() != codes.ResourceExhausted {
		fail("expected RESOURCE_EXHAUSTED, got %v", err)
	}
	found := false
	for _, detail := range refusal.Details() {
		switch d := detail.(type) {
		case *errdetails.QuotaFailure:
			found = d.GetViolations()[0].GetSubject() == "user:go-user"
		case *errdetails.ErrorInfo:
			fmt.Printf("ErrorInfo %s %v\n", d.GetReason(), d.GetMetadata())
		}
	}
	if !found {
		fail("no google.rpc.QuotaFailure in %v", refusal.Details())
	}
	fmt.Println("ok: go")
}
