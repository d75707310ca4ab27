// Writes the grammar_fuzzer seed corpus into argv[1]: schemas that use every supported
// keyword (alone, and followed by a text of theirs), any-object texts, and regexes with
// texts of theirs, and GBNF grammars with texts of theirs.
#include <optional>
#include <string>

#include "tests/fuzz/seed_corpus.h"

int main(int argc, char** argv) {
  std::optional<ringserve::fuzz::SeedCorpus> corpus =
      ringserve::fuzz::SeedCorpus::FromArgs(argc, argv);
  if (!corpus) return 2;
  const std::string person =
      R"({"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":8},)"
      R"("age":{"type":"integer","minimum":0,"exclusiveMaximum":150},)"
      R"("tags":{"type":"array","items":{"enum":["a","b",1,null]},"minItems":1,"maxItems":3},)"
      R"("pet":{"anyOf":[{"type":"string"},{"type":"null"}]},"born":{"format":"date-time"},)"
      R"("kind":{"const":"x"},"code":{"pattern":"^[A-Z]{2}-\\d+$"}},)"
      R"("required":["name","age"],"additionalProperties":false})";
  const std::string tree =
      R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"number"},)"
      R"("kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},)"
      R"("$ref":"#/$defs/node"})";
  corpus->Add("person.json", 0, person);
  corpus->Add("tree.json", 0, tree);
  corpus->Add("person_text", 1,
              person + std::string(1, '\0') +
                  R"({"name": "Ada", "age": 36, "tags": ["a", 1], "pet": null, "kind": "x"})");
  corpus->Add("tree_text", 1,
              tree + std::string(1, '\0') + "{\n  \"v\": -1.5e3,\n  \"kids\": [{\"v\": 0}]\n}");
  corpus->Add("object.txt", 2,
              "{\"s\": \"esc \\\" \\u00e9 \xC3\xA9\", \"n\": [0, -0.5e+10, true, null, {}]}");
  corpus->Add("regex_text", 3,
              std::string(R"x((?:yes|no)(, [\w\s]{1,9}\.)?|\u00e9[^\n]*\d{2,}|[α-ω]+)x") +
                  std::string(1, '\0') + "no, because.");
  corpus->Add("gbnf_text", 4,
              std::string("root ::= expr\nexpr ::= term ((\"+\" | \"-\") term)*\n"
                          "term ::= [0-9]+ | \"(\" expr \")\" | \"-\" term  # signs\n"
                          "list ::= [a-z\\x41-\\u00ff]{1,3} (\",\" list)? .?\n") +
                  std::string(1, '\0') + "(1+2)-(-3)");
  corpus->Add("gbnf_json", 4,
              std::string("root ::= v\nv ::= \"[\" (v (\", \" v)*)? \"]\" | \"{\" (s \": \" v)? "
                          "\"}\" | s | [0-9]+\ns ::= \"\\\"\" [^\"\\\\]* \"\\\"\"\n") +
                  std::string(1, '\0') + "[{\"a\": [1, \"b\"]}]");
  const std::string nul(1, '\0');
  corpus->Add("gbnf_json_rule", 5,
              "root ::= call (\"\\n\" call)*\ncall ::= \"<tool_call>\\n{\\\"name\\\": "
              "\\\"f\\\", \\\"arguments\\\": \" v \"}\\n</tool_call>\"\n" +
                  nul + person + nul +
                  "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"name\": \"Ada\", "
                  "\"age\": 36}}\n</tool_call>");
  return corpus->ExitCode();
}
