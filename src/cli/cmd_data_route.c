/* soju data route IN... --out OUT.jsonl.zst — language identification, then
 * one output per language: OUT.ko.jsonl.zst, OUT.en.jsonl.zst, ... */
#include "commands.h"
#include "data_common.h"

int cmd_data_route(int argc, char **argv) {
    return data_steps_command(argc, argv, "soju data route IN... --out OUT.jsonl.zst  (writes OUT.<lang>.jsonl.zst)",
                              "langid", 0, 1);
}
