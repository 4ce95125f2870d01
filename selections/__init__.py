"""hepline event selections: object definitions, HH -> yybb, RPV multijet baseline."""
