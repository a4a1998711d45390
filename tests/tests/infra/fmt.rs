//! `terraform fmt`'s layout, checked (no Terraform binary here): two spaces per open bracket,
//! the `=` of consecutive single-line attributes aligned one space after the longest name, no
//! tabs, no trailing spaces. The rules are those of hclwrite's formatter: a line that opens a
//! multi-line value, a comment line or a blank line ends an alignment group.

/// One line's code with comments removed and string contents masked (same columns).
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                out.push('"');
                continue;
            }
            out.push('x');
            continue;
        }
        match c {
            '#' => break,
            '/' if out.ends_with('/') => {
                out.pop();
                break;
            }
            '"' => {
                in_string = true;
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out.trim_end().to_string()
}

fn net_brackets(code: &str) -> i32 {
    code.chars()
        .map(|c| match c {
            '{' | '[' | '(' => 1,
            '}' | ']' | ')' => -1,
            _ => 0,
        })
        .sum()
}

/// The byte offset of an attribute's `=` when the line is a complete single-line attribute.
fn assignment(code: &str) -> Option<usize> {
    let at = code.find('=')?;
    let rest = &code[at..];
    let comparison = rest.starts_with("==") || code[..at].ends_with(['!', '<', '>', '=']);
    let before_is_name = net_brackets(&code[..at]) == 0 && !code[..at].trim().is_empty();
    (!comparison && before_is_name && net_brackets(rest) == 0).then_some(at)
}

/// The layout problems of one file, as `line N: what`.
pub fn problems(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack: Vec<i32> = Vec::new();
    let mut chain: Vec<(usize, usize, usize)> = Vec::new(); // (line, name width, '=' column)
    let close_chain = |chain: &mut Vec<(usize, usize, usize)>, found: &mut Vec<String>| {
        let widest = chain.iter().map(|&(_, width, _)| width).max().unwrap_or(0);
        for &(line, _, column) in chain.iter() {
            if column != widest + 1 {
                found.push(format!("line {line}: `=` at column {column}, expected {} (aligned with its neighbours)", widest + 1));
            }
        }
        chain.clear();
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.contains('\t') {
            found.push(format!("line {number}: tab"));
        }
        if line.ends_with(' ') {
            found.push(format!("line {number}: trailing space"));
        }
        let code = code_of(line);
        if line.trim().is_empty() {
            close_chain(&mut chain, &mut found);
            continue;
        }
        let net = net_brackets(&code);
        let indent = line.len() - line.trim_start().len();
        let expected = if net < 0 {
            let mut closed = -net;
            while closed > 0 {
                match stack.last_mut() {
                    Some(top) if *top > closed => {
                        *top -= closed;
                        closed = 0;
                    }
                    Some(top) => {
                        closed -= *top;
                        stack.pop();
                    }
                    None => break,
                }
            }
            2 * stack.len()
        } else {
            2 * stack.len()
        };
        if net > 0 {
            stack.push(net);
        }
        if indent != expected {
            found.push(format!(
                "line {number}: indented {indent}, expected {expected}"
            ));
        }
        match assignment(&code) {
            Some(at) => {
                let name_width = code[..at].trim_end().len();
                chain.push((number, name_width, at));
            }
            None => close_chain(&mut chain, &mut found),
        }
    }
    close_chain(&mut chain, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn aligned_blocks_pass_and_misaligned_ones_do_not() {
        let good = "resource \"a\" \"b\" {\n  name  = \"x\"\n  count = 1\n  tags = {\n    A = \"b\"\n  }\n}\n";
        assert!(problems(good).is_empty(), "{:?}", problems(good));
        let bad = "resource \"a\" \"b\" {\n  name = \"x\"\n  count = 1\n   x = 2\n}\n";
        let found = problems(bad);
        assert_eq!(found.len(), 3, "{found:?}");
    }
}
