// C helpers for the Go binding: one cgo crossing reads a whole request or answers with headers,
// and header arrays are built on the C stack so no Go pointer is ever stored in C memory.
#ifndef GRACESERVE_GO_HELPERS_H
#define GRACESERVE_GO_HELPERS_H
#include <stddef.h>
#include <stdint.h>
#include "graceserve.h"

enum {
	GS_METHOD, GS_PATH, GS_QUERY, GS_REMOTE, GS_BODY, GS_BODY_LEN, GS_NHEADERS, GS_VERSION,
	GS_INFO_WORDS
};

void gs_set_handler(server_options *o, uintptr_t ud);
void gs_set_userdata(server_options *o, uintptr_t ud);
void gs_set_events(server_options *o);
size_t gs_read_request(const server_request *r, uintptr_t *out, size_t cap_headers);
int gs_respond(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
               const uint8_t *body, size_t body_len);
int gs_respond_stream(server_request *req, uint16_t status, const uint8_t *blob, const size_t *lens, size_t nh,
                      server_stream **out);
#endif
